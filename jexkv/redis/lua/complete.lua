--[[ complete: ARGV[3] = completed jobs to keep (0: delete them, -1: all), ARGV[4] = count,
then per job: id, token, result (JSON); then the next claim: limit (0: none), token, lease ms,
worker name, dead jobs to keep. Returns {lost ids, fetch's reply}. ]]
local keep, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local lost = {}
trim_events()
for i = 0, count - 1 do
  local base = 5 + i * 3
  local id, token, result = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local key = PREFIX .. id
  if release_lock(id, key, token) then
    if keep == 0 then
      rcall("DEL", key, key .. ":logs")
    else
      rcall("HINCRBY", key, "atm", 1)
      rcall("HSET", key, "returnvalue", result, "finishedOn", NOW)
      rcall("ZADD", K_COMPLETED, NOW, id)
    end
    emit("completed", "jobId", id, "returnvalue", result, "prev", "active")
  else
    lost[#lost + 1] = id
  end
end
if keep > 0 and #lost < count then trim_finished(K_COMPLETED, keep) end
local base = 5 + count * 3
local limit = tonumber(ARGV[base])
local claimed = {0}
if limit > 0 then
  claimed = fetch(limit, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], tonumber(ARGV[base + 4]))
end
if #claimed == 1 and rcall("LLEN", K_WAIT) == 0 and rcall("LLEN", K_ACTIVE) == 0
    and rcall("ZCARD", K_PRIO) == 0 then
  emit("drained")
end
return {lost, claimed}

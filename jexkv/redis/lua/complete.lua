--[[ complete: record finished jobs, then claim the next ones, in one call.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   completed jobs to keep (0: delete, -1: all), for jobs whose opts set no
            removeOnComplete of their own (keep_rule)
  ARGV[5]   n, the number of finished jobs, then n times: id, lock token, result (JSON)
  then      the next claim: limit (0: none), lock token, lease ms, worker name, dead jobs
            to keep (fetch's arguments)
  Returns {lost ids, fetch's reply}. The lock check is release_lock's; the deletes and
  stalled marks of the batch go in one call each; a job's deduplication key is released
  (and a next job BullMQ kept for it added) as bury does.
]]
local keep, count = tonumber(ARGV[4]), tonumber(ARGV[5])
local lost, gone, finished, trim = {}, {}, {}, false
trim_events()
for i = 0, count - 1 do
  local base = 6 + i * 3
  local id, token, result = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local key = PREFIX .. id
  local lock = rcall("GET", key .. ":lock")
  if (lock == token or (not lock and rcall("LPOS", K_ACTIVE, id)))
      and rcall("LREM", K_ACTIVE, -1, id) > 0 then
    finished[#finished + 1] = id
    local fields = rcall("HMGET", key, "opts", "deid")
    if fields[2] then
      release_dedup(id, fields[2])
      add_dedup_next(fields[2])
    end
    local n, age, most, own = keep_rule(opts_of(fields[1]), "removeOnComplete", keep)
    if n == 0 then
      gone[#gone + 1] = key
      gone[#gone + 1] = key .. ":logs"
    else
      rcall("HINCRBY", key, "atm", 1)
      rcall("HSET", key, "returnvalue", result, "finishedOn", NOW)
      file_finished(id, key, K_COMPLETED, n, age, most, own)
      trim = trim or not own
    end
    if lock then gone[#gone + 1] = key .. ":lock" end
    emit("completed", "jobId", id, "returnvalue", result, "prev", "active")
  else
    lost[#lost + 1] = id
  end
end
if #gone > 0 then rcall("DEL", unpack(gone)) end
if #finished > 0 then rcall("SREM", K_STALLED, unpack(finished)) end
if keep > 0 and trim then trim_finished(K_COMPLETED, keep) end
local base = 6 + count * 3
local limit = tonumber(ARGV[base])
local claimed = {0}
if limit > 0 then
  claimed = fetch(limit, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], tonumber(ARGV[base + 4]))
elseif #finished > 0 then
  wake_if_ready() -- room was made: an idle worker may take the next job
end
if #claimed == 1 and rcall("LLEN", K_WAIT) == 0 and rcall("LLEN", K_ACTIVE) == 0
    and rcall("ZCARD", K_PRIO) == 0 then
  emit("drained")
end
return {lost, claimed}

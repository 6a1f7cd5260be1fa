--[[ stalled: the two-phase stalled check, at most once per interval across every worker.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   interval ms (Q:stalled-check lives that long)
  ARGV[5]   max stalls
  Each job marked in the last check whose lock is gone goes back to the front of wait with
  stc + 1; past max stalls it also gets `defa`, and whoever fetches it next fails it. Then
  every active job is marked for the next check (lease renewals unmark). A Q:stalled-check
  that lives longer than one interval was set before the server's clock stepped back: stale,
  so the check runs (README, "Clock steps"). Returns how many jobs were recovered.
]]
if not rcall("SET", K_CHECK, NOW, "PX", ARGV[4], "NX") then
  if rcall("PTTL", K_CHECK) <= tonumber(ARGV[4]) then return 0 end
  rcall("SET", K_CHECK, NOW, "PX", ARGV[4])
end
local max_stalls = tonumber(ARGV[5])
trim_events()
local recovered = 0
local marked = rcall("SMEMBERS", K_STALLED)
if #marked > 0 then
  rcall("DEL", K_STALLED)
  local held = paused_or_full()
  for _, id in ipairs(marked) do
    local key = PREFIX .. id
    if rcall("EXISTS", key .. ":lock") == 0 and rcall("LREM", K_ACTIVE, 1, id) > 0 then
      local stalls = rcall("HINCRBY", key, "stc", 1)
      if stalls > max_stalls then
        rcall("HSET", key, "defa", "Stalled: the job's lease ran out " .. stalls ..
              " times (its worker died or hung); max_stalls is " .. max_stalls)
      end
      rcall("RPUSH", K_WAIT, id)
      mark_ready(held)
      emit("waiting", "jobId", id, "prev", "active")
      emit("stalled", "jobId", id)
      recovered = recovered + 1
    end
  end
end
local active = rcall("LRANGE", K_ACTIVE, 0, -1)
for i = 1, #active, 5000 do
  rcall("SADD", K_STALLED, unpack(active, i, math.min(i + 4999, #active)))
end
return recovered

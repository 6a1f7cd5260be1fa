--[[ retry_dead: move dead jobs back to waiting with a fresh attempt budget.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   job id, or "" for up to BATCH jobs that died at or before now
  Returns how many moved (the caller calls again while that is BATCH).
]]
local ids
if ARGV[4] ~= "" then
  ids = {}
  if rcall("ZSCORE", K_FAILED, ARGV[4]) then ids[1] = ARGV[4] end
else
  ids = rcall("ZRANGEBYSCORE", K_FAILED, "-inf", NOW, "LIMIT", 0, BATCH)
end
if #ids == 0 then return 0 end
local held = paused_or_full()
trim_events()
for _, id in ipairs(ids) do
  local key = PREFIX .. id
  rcall("ZREM", K_FAILED, id)
  rcall("HSET", key, "atm", 0, "ats", 0, "stc", 0, "delay", 0)
  rcall("HDEL", key, "failedReason", "stacktrace", "finishedOn", "processedOn", "defa",
        "returnvalue")
  push_ready(id, tonumber(rcall("HGET", key, "priority")) or 0, held, "LPUSH")
  emit("waiting", "jobId", id, "prev", "failed")
end
return #ids

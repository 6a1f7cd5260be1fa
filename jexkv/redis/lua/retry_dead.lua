--[[ retry_dead: ARGV[3] = job id ("" for every dead job that failed at or before now, 1000 per
call). Each goes back to waiting with a fresh attempt budget. Returns how many moved. ]]
local ids
if ARGV[3] ~= "" then
  ids = {}
  if rcall("ZSCORE", K_FAILED, ARGV[3]) then ids[1] = ARGV[3] end
else
  ids = rcall("ZRANGEBYSCORE", K_FAILED, "-inf", NOW, "LIMIT", 0, 1000)
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

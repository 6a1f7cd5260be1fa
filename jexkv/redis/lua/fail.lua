--[[ fail: a failed attempt: retry the job at a time, or bury it (dead).
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   job id
  ARGV[5]   lock token
  ARGV[6]   error text (failedReason)
  ARGV[7]   traceback text (the newest of the kept stacktrace)
  ARGV[8]   retry at, ms since the epoch (-1: dead now)
  ARGV[9]   dead jobs to keep (-1: all)
  Returns 1, or 0 when the job was no longer held with that token.
]]
local id, token, reason, trace = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local retry_at, keep_dead = tonumber(ARGV[8]), tonumber(ARGV[9])
local key = PREFIX .. id
if not release_lock(id, key, token) then return 0 end
local ok, traces = pcall(cjson.decode, rcall("HGET", key, "stacktrace") or "[]")
if not ok or type(traces) ~= "table" then traces = {} end
traces[#traces + 1] = trace
while #traces > TRACES_KEPT do table.remove(traces, 1) end
rcall("HSET", key, "failedReason", reason, "stacktrace", cjson.encode(traces))
trim_events()
if retry_at < 0 then
  bury(id, key, reason, keep_dead)
  return 1
end
rcall("HINCRBY", key, "atm", 1)
if retry_at > NOW then
  rcall("HSET", key, "delay", retry_at - NOW)
  add_delayed(id, retry_at)
  emit("delayed", "jobId", id, "delay", retry_at)
else
  local priority = tonumber(rcall("HGET", key, "priority")) or 0
  push_ready(id, priority, paused_or_full(), "LPUSH")
  emit("waiting", "jobId", id, "prev", "active")
end
return 1

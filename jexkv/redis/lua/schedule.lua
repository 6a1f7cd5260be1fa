--[[ schedule: store (or replace) a schedule in BullMQ's job-scheduler layout (lib.lua) and
  add the job of its first tick. A replaced schedule's job for its next tick is removed
  unless it has started.
  ARGV[4]  the schedule id
  ARGV[5]  the fields of its hash, one JSON array [field, value, ...] (ic is set here)
  ARGV[6]  its first tick, ms ("" when it has none: it ended before it began)
  ARGV[7]  the first tick's job, JSON [name, opts (JSON text), delay ms, priority]
  ARGV[8]  its data (JSON text)
  Returns the first tick's job id, or false.
]]
local sid = ARGV[4]
local repeat_key = PREFIX .. "repeat"
local skey = repeat_key .. ":" .. sid
local prev = rcall("ZSCORE", repeat_key, sid)
if prev then drop_pending("repeat:" .. sid .. ":" .. prev) end
rcall("DEL", skey)
rcall("HSET", skey, unpack(cjson.decode(ARGV[5])))
if ARGV[6] == "" then
  rcall("ZADD", repeat_key, 0, sid)
  rcall("HSET", skey, "ic", 0)
  return false
end
rcall("ZADD", repeat_key, ARGV[6], sid)
rcall("HSET", skey, "ic", 1)
local job = cjson.decode(ARGV[7])
local id = "repeat:" .. sid .. ":" .. ARGV[6]
add_scheduled(id, job[1], ARGV[8], job[2], job[3], job[4], sid)
trim_events()
return id

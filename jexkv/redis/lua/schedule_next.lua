--[[ schedule_next: a worker claimed the job of a schedule's tick; make the next tick's job,
  once. Only a claim of the schedule's current tick (its Q:repeat score) makes it, and not
  if that job exists: BullMQ's rule too, so Node and jexkv workers on one queue make one job
  per tick between them. An ended schedule keeps its last tick as its score, as in BullMQ.
  ARGV[4]  the schedule id
  ARGV[5]  the claimed job's tick
  ARGV[6]  the next tick ("" when the schedule has ended)
  ARGV[7]  the next tick's job, JSON [name, opts (JSON text), delay ms, priority]
  ARGV[8]  its data (JSON text)
  Returns 1 when it made the job, else 0.
]]
local sid = ARGV[4]
local repeat_key = PREFIX .. "repeat"
local current = rcall("ZSCORE", repeat_key, sid)
if not current or tonumber(current) ~= tonumber(ARGV[5]) or ARGV[6] == "" then return 0 end
local job = cjson.decode(ARGV[7])
if not add_scheduled("repeat:" .. sid .. ":" .. ARGV[6], job[1], ARGV[8], job[2], job[3],
                     job[4], sid) then
  return 0
end
rcall("ZADD", repeat_key, ARGV[6], sid)
rcall("HINCRBY", repeat_key .. ":" .. sid, "ic", 1)
trim_events()
return 1

--[[ unschedule: remove a schedule and its job for the next tick unless it has started.
  ARGV[4]  the schedule id
  Returns 1 if the schedule existed, else 0.
]]
local sid = ARGV[4]
local repeat_key = PREFIX .. "repeat"
local tick = rcall("ZSCORE", repeat_key, sid)
if not tick then return 0 end
drop_pending("repeat:" .. sid .. ":" .. tick)
rcall("ZREM", repeat_key, sid)
rcall("DEL", repeat_key .. ":" .. sid)
return 1

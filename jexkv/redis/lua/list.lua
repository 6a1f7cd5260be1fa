--[[ list: the jobs of one state.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   state: waiting, delayed, active, completed or dead
  ARGV[5]   limit
  Returns {id, hash, ...}: waiting as wait (next first), then prioritized, then due delayed
  jobs (the caller orders them by priority); delayed by due time; active oldest first;
  completed and dead newest first.
]]
local state, limit = ARGV[4], tonumber(ARGV[5])
local ids = {}
local function take(list)
  for _, id in ipairs(list) do ids[#ids + 1] = id end
end
if state == "waiting" then
  local wait = rcall("LRANGE", K_WAIT, -limit, -1)
  for i = #wait, 1, -1 do ids[#ids + 1] = wait[i] end
  take(rcall("ZRANGE", K_PRIO, 0, limit - 1))
  take(rcall("ZRANGEBYSCORE", K_DELAYED, 0, DUE_LIMIT - 1, "LIMIT", 0, limit))
elseif state == "delayed" then
  take(rcall("ZRANGEBYSCORE", K_DELAYED, DUE_LIMIT, "+inf", "LIMIT", 0, limit))
elseif state == "active" then
  local active = rcall("LRANGE", K_ACTIVE, -limit, -1)
  for i = #active, 1, -1 do ids[#ids + 1] = active[i] end
elseif state == "completed" then
  take(rcall("ZREVRANGE", K_COMPLETED, 0, limit - 1))
else
  take(rcall("ZREVRANGE", K_FAILED, 0, limit - 1))
end
local out = {}
for _, id in ipairs(ids) do
  local hash = rcall("HGETALL", PREFIX .. id)
  if #hash > 0 then
    out[#out + 1] = id
    out[#out + 1] = hash
  end
end
return out

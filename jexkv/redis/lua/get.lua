--[[ get: one job.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   job id
  Returns {state, hash}, or nil when no such job is kept.
]]
local id = ARGV[4]
local hash = rcall("HGETALL", PREFIX .. id)
if #hash == 0 then return nil end
return {state_of(id), hash}

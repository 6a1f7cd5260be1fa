--[[ get: ARGV[3] = job id. Returns {state, hash}, or nil when no such job is kept. ]]
local id = ARGV[3]
local hash = rcall("HGETALL", PREFIX .. id)
if #hash == 0 then return nil end
return {state_of(id), hash}

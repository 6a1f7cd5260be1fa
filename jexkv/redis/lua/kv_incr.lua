--[[ kv_incr: INCRBY, and a TTL only when this call created the key (a fixed window).
  KEYS[1]   the key
  ARGV[1]   amount
  ARGV[2]   TTL ms (0: none)
  Returns the new value (an error reply when the value is not an integer).
]]
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value

--[[ kv_set_many: SET every key to its value, all in one call (atomic on its server).
  KEYS      the keys (of one slot on a Redis Cluster)
  ARGV[1]   TTL ms (0: none)
  ARGV[1+i] the value of KEYS[i] (JSON text)
  Returns how many keys were written.
]]
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if ttl > 0 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[i + 1])
  end
end
return #KEYS

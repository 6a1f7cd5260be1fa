--[[ extend: renew the leases of jobs a worker still runs.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   lease ms
  ARGV[5..] id, lock token pairs
  Renews each lock still held with its token (or, lapsed, still unclaimed and active) and
  clears its stalled mark. Returns the ids whose lease was lost.
]]
local lease = ARGV[4]
local lost = {}
for i = 5, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local lock_key = PREFIX .. id .. ":lock"
  local lock = rcall("GET", lock_key)
  if lock == token or (not lock and rcall("LPOS", K_ACTIVE, id)) then
    rcall("SET", lock_key, token, "PX", lease)
    rcall("SREM", K_STALLED, id)
  else
    lost[#lost + 1] = id
  end
end
return lost

--[[ release: hand back jobs claimed and never started.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4..] id, lock token pairs, in claim order
  Each goes back to the front of the line, as if never fetched (ats is taken back).
  Returns 1.
]]
local held = paused_or_full()
for i = #ARGV - 1, 4, -2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = PREFIX .. id
  if release_lock(id, key, token) then
    rcall("HINCRBY", key, "ats", -1)
    rcall("HDEL", key, "processedOn")
    local priority = tonumber(rcall("HGET", key, "priority")) or 0
    if priority == 0 then
      rcall("RPUSH", K_WAIT, id)
    else
      rcall("ZADD", K_PRIO, priority * 4294967296, id)
    end
    emit("waiting", "jobId", id, "prev", "active")
  end
end
mark_ready(held)
return 1

--[[ purge_dead: delete up to BATCH dead jobs, the oldest first.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  The deduplication keys that still name them are released (as BullMQ's clean does).
  Returns how many were deleted (the caller calls again while that is BATCH).
]]
local ids = rcall("ZRANGE", K_FAILED, 0, BATCH - 1)
for _, id in ipairs(ids) do
  local key = PREFIX .. id
  release_dedup_removed(id, key)
  rcall("DEL", key, key .. ":logs", key .. ":lock")
end
if #ids > 0 then
  rcall("ZREM", K_FAILED, unpack(ids))
  emit("cleaned", "count", #ids)
end
return #ids

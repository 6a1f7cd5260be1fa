--[[ purge_dead: delete up to 1000 dead jobs (the oldest first), releasing the deduplication
keys that still name them (as BullMQ's clean does). Returns how many. ]]
local ids = rcall("ZRANGE", K_FAILED, 0, 999)
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

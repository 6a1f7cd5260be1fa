--[[ purge_dead: delete up to 1000 dead jobs (the oldest first). Returns how many. ]]
local ids = rcall("ZRANGE", K_FAILED, 0, 999)
for _, id in ipairs(ids) do
  local key = PREFIX .. id
  rcall("DEL", key, key .. ":logs", key .. ":lock")
end
if #ids > 0 then
  rcall("ZREM", K_FAILED, unpack(ids))
  emit("cleaned", "count", #ids)
end
return #ids

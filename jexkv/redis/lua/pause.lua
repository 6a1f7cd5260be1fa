--[[ pause: ARGV[3] = "paused" or "resumed". A paused queue keeps its jobs in wait; meta.paused
stops every worker (jexkv's and BullMQ's) from fetching them. ]]
if ARGV[3] == "paused" then
  rcall("HSET", K_META, "paused", 1)
  rcall("DEL", K_MARKER)
else
  rcall("HDEL", K_META, "paused")
  if rcall("LLEN", K_WAIT) > 0 or rcall("ZCARD", K_PRIO) > 0 then
    mark_ready(false)
  else
    mark_next_delayed()
  end
end
emit(ARGV[3])
return 1

--[[ pause: pause or resume a queue for every worker (jexkv's and BullMQ's).
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]   "paused" or "resumed"
  A paused queue keeps its jobs in wait; meta.paused stops every worker from fetching them.
  Returns 1.
]]
if ARGV[4] == "paused" then
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
emit(ARGV[4])
return 1

--[[ counts: one consistent look at every state's size.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  Returns {wait, prioritized, due delayed, all delayed, active, completed, failed,
  paused (0/1)}.
]]
return {
  rcall("LLEN", K_WAIT), rcall("ZCARD", K_PRIO),
  rcall("ZCOUNT", K_DELAYED, 0, DUE_LIMIT - 1), rcall("ZCARD", K_DELAYED),
  rcall("LLEN", K_ACTIVE), rcall("ZCARD", K_COMPLETED), rcall("ZCARD", K_FAILED),
  rcall("HEXISTS", K_META, "paused"),
}

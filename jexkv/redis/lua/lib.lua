--[[ lib: the functions every queue script shares (jexkv's scripts over BullMQ 6's layout).

  The loader (jexkv/redis/scripts.py) puts this preamble, and the functions a script calls,
  in front of each script. Every script gets
    KEYS[1..14]  the queue's fourteen keys, in the order unpacked below (scripts.KEY_NAMES)
    ARGV[1]      the job key prefix "<prefix>:<queue>:" (job keys are built from it, as
                 BullMQ builds them: on a Redis Cluster it carries the hash tag)
    ARGV[2]      now, ms since the epoch (the caller's clock, as BullMQ's timestamps are)
    ARGV[3]      BATCH: how many jobs a step that moves many moves per call
  and its own arguments from ARGV[4] on (each script's header says which).
]]
local rcall = redis.call
local K_WAIT, K_ACTIVE, K_PRIO, K_PC, K_DELAYED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_COMPLETED, K_FAILED, K_STALLED, K_CHECK = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_ID, K_META, K_EVENTS, K_MARKER, K_LIMITER = KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local PREFIX = ARGV[1]
local NOW = tonumber(ARGV[2])
local BATCH = tonumber(ARGV[3]) -- jobs moved per call where a step takes many (scripts.BATCH)
local DUE_LIMIT = (NOW + 1) * 4096 -- delayed scores below this are due
local TRACES_KEPT = 10 -- stack traces kept per job, newest last
-- The fields a claim hands to the worker, in this order; fetch packs them (the id in place
-- of defa) as one JSON array per job: one reply element instead of a whole hash.
local CLAIM_FIELDS = {"name", "data", "opts", "timestamp", "delay", "priority", "atm", "ats",
                      "stc", "failedReason", "stacktrace", "defa"}

local function emit(...)
  rcall("XADD", K_EVENTS, "*", "event", ...)
end

local function trim_events()
  local most = rcall("HGET", K_META, "opts.maxLenEvents")
  if not most then
    most = 10000
    rcall("HSET", K_META, "opts.maxLenEvents", most)
  end
  rcall("XTRIM", K_EVENTS, "MAXLEN", "~", most)
end

-- Paused, or as many jobs active as meta.concurrency allows: fetch nothing, mark nothing.
local function paused_or_full()
  local meta = rcall("HMGET", K_META, "paused", "concurrency")
  if meta[1] then return true end
  if meta[2] then return rcall("LLEN", K_ACTIVE) >= tonumber(meta[2]) end
  return false
end

local function mark_ready(held)
  if not held then rcall("ZADD", K_MARKER, 0, "0") end
end

-- The marker's "1" member carries the next delayed due time.
local function mark_next_delayed()
  local first = rcall("ZRANGE", K_DELAYED, 0, 0, "WITHSCORES")
  if first[2] then rcall("ZADD", K_MARKER, math.floor(tonumber(first[2]) / 4096), "1") end
end

local function next_due()
  local first = rcall("ZRANGE", K_DELAYED, 0, 0, "WITHSCORES")
  if first[2] then return math.floor(tonumber(first[2]) / 4096) end
  return 0
end

local function priority_score(priority)
  return priority * 4294967296 + rcall("INCR", K_PC) % 4294967296
end

local function push_ready(id, priority, held, push)
  if priority == 0 then
    rcall(push, K_WAIT, id)
  else
    rcall("ZADD", K_PRIO, priority_score(priority), id)
  end
  mark_ready(held)
end

-- due * 4096 + a per-millisecond sequence: first in, first out within one millisecond.
local function add_delayed(id, due)
  local low, high = due * 4096, due * 4096 + 4095
  local last = rcall("ZREVRANGEBYSCORE", K_DELAYED, high, low, "WITHSCORES", "LIMIT", 0, 1)
  local score = low
  if last[2] then score = math.min(tonumber(last[2]) + 1, high) end
  rcall("ZADD", K_DELAYED, score, id)
  mark_next_delayed()
end

-- Due delayed jobs become ready, oldest due first (up to BATCH per call).
local function promote(held)
  local ids = rcall("ZRANGEBYSCORE", K_DELAYED, 0, DUE_LIMIT - 1, "LIMIT", 0, BATCH)
  if #ids == 0 then return end
  rcall("ZREM", K_DELAYED, unpack(ids))
  for _, id in ipairs(ids) do
    local key = PREFIX .. id
    local priority = tonumber(rcall("HGET", key, "priority")) or 0
    if priority == 0 then
      rcall("LPUSH", K_WAIT, id)
    else
      rcall("ZADD", K_PRIO, priority_score(priority), id)
    end
    rcall("HSET", key, "delay", 0)
    emit("waiting", "jobId", id, "prev", "delayed")
  end
  mark_ready(held)
end

-- Keep the newest `keep` members of a finished set (-1: all), deleting the others' jobs.
-- Trims leave deduplication keys alone, as BullMQ's do: a job's was released when it finished.
local function trim_finished(set, keep)
  if keep < 0 then return end
  local old = rcall("ZREVRANGE", set, keep, -1)
  for _, id in ipairs(old) do
    local key = PREFIX .. id
    rcall("DEL", key, key .. ":logs", key .. ":lock")
  end
  if #old > 0 then rcall("ZREMRANGEBYRANK", set, 0, -(keep + 1)) end
end

-- Delete the jobs of a finished set that finished more than `age` ms ago (`most` at a time).
local function trim_older(set, age, most)
  local old = rcall("ZRANGEBYSCORE", set, "-inf", NOW - age, "LIMIT", 0, most)
  for _, id in ipairs(old) do
    local key = PREFIX .. id
    rcall("DEL", key, key .. ":logs", key .. ":lock")
  end
  if #old > 0 then rcall("ZREM", set, unpack(old)) end
end

-- A job's opts as a table ({} when missing or not JSON).
local function opts_of(raw)
  local ok, opts = pcall(cjson.decode, raw or "{}")
  if ok and type(opts) == "table" then return opts end
  return {}
end

--[[ What to keep when a job finishes into a set: BullMQ's keepJobs. The job's own
removeOnComplete/removeOnFail (`field`) when a BullMQ producer set it (true: delete it;
false: keep all; n: the newest n; {age (s), count, limit}), else the worker's `keep` (-1: all,
0: delete it, n: the newest n). jexkv's producer writes its keep settings there for Node
workers and marks them with "jexkv": a jexkv worker uses its own for those jobs.
Returns count (-1: all), age in ms (false: none), how many the age trim removes at most, and
whether the rule is the job's own. ]]
local function keep_rule(opts, field, keep)
  local own = opts[field]
  if opts["jexkv"] or own == nil or own == cjson.null then return keep, false, 0, false end
  if own == true then return 0, false, 0, true end
  if type(own) == "number" then return math.max(math.floor(own), -1), false, 0, true end
  if type(own) == "table" then
    local count, age = tonumber(own["count"]), tonumber(own["age"])
    count = count and math.max(math.floor(count), -1) or -1
    return count, age and age * 1000 or false, tonumber(own["limit"]) or 1000, true
  end
  return -1, false, 0, true -- false (or anything else BullMQ reads as "keep")
end

-- Put a finished job in `set` by its rule (keep_rule), or delete it; then trim the set by the
-- job's own rule. Returns true when the job was kept.
local function file_finished(id, key, set, count, age, most, own)
  if count == 0 then
    rcall("DEL", key, key .. ":logs")
    return false
  end
  rcall("ZADD", set, NOW, id)
  if own then
    if age then trim_older(set, age, most) end
    if count > 0 then trim_finished(set, count) end
  end
  return true
end

-- BullMQ's deduplication (Node's `deduplication: {id}` writes the job field deid and the key
-- Q:de:<id>, and drops every later add with that id while the key lives): when the job finishes,
-- the key goes if it has no TTL and still names this job (a TTL'd key, BullMQ's throttle,
-- lives out its TTL).
local function release_dedup(id, deid)
  if not deid then return end
  local de = PREFIX .. "de:" .. deid
  local ttl = rcall("PTTL", de)
  if ttl == 0 or (ttl == -1 and rcall("GET", de) == id) then rcall("DEL", de) end
end

-- BullMQ's keepLastIfActive: the latest add of the same deduplication id made while the job
-- ran is kept in Q:dn:<deid> (name, data, opts, jid); it is added when the job finishes, with
-- the key naming it. (Flow parents and repeat keys of such an add are not carried over.)
local function add_dedup_next(deid)
  local dn = PREFIX .. "dn:" .. deid
  local next_job = rcall("HMGET", dn, "name", "data", "opts", "jid")
  if not next_job[1] then return end
  local number = rcall("INCR", K_ID)
  local id = next_job[4] or tostring(number)
  local opts = opts_of(next_job[3])
  local de_opts = type(opts["de"]) == "table" and opts["de"] or {}
  local ttl = tonumber(de_opts["ttl"])
  if ttl and ttl > 0 and not de_opts["keepLastIfActive"] then
    rcall("SET", PREFIX .. "de:" .. deid, id, "PX", ttl)
  else
    rcall("SET", PREFIX .. "de:" .. deid, id)
  end
  local delay = tonumber(opts["delay"]) or 0
  local priority = tonumber(opts["priority"]) or 0
  rcall("HSET", PREFIX .. id, "name", next_job[1], "data", next_job[2] or "{}", "opts",
        next_job[3] or "{}", "timestamp", NOW, "delay", delay, "priority", priority, "deid", deid)
  emit("added", "jobId", id, "name", next_job[1])
  if delay > 0 then
    add_delayed(id, NOW + delay)
    emit("delayed", "jobId", id, "delay", NOW + delay)
  else
    push_ready(id, priority, paused_or_full(), opts["lifo"] and "RPUSH" or "LPUSH")
    emit("waiting", "jobId", id)
  end
  rcall("DEL", dn)
end

-- When a job is removed (purged) the key goes if it names this job, whatever its TTL, with
-- any next job BullMQ's keepLastIfActive stored for it (Q:dn:<id>).
local function release_dedup_removed(id, key)
  local deid = rcall("HGET", key, "deid")
  if not deid then return end
  local de = PREFIX .. "de:" .. deid
  if rcall("GET", de) == id then rcall("DEL", de, PREFIX .. "dn:" .. deid) end
end

-- The lock check of every step that finishes a job: held with `token`, or (the lease ran out
-- but nobody took the job since) unlocked and still active. Frees the lock when held.
local function release_lock(id, key, token)
  local lock = rcall("GET", key .. ":lock")
  if lock == token or (not lock and rcall("LPOS", K_ACTIVE, id)) then
    if rcall("LREM", K_ACTIVE, -1, id) == 0 then return false end
    if lock then rcall("DEL", key .. ":lock") end
    rcall("SREM", K_STALLED, id)
    return true
  end
  return false
end

-- Move an active job (lock already released) to the dead-letter set `failed`, or delete it,
-- by its removeOnFail or else the worker's `keep_dead` (keep_rule).
local function bury(id, key, reason, keep_dead)
  local made = rcall("HINCRBY", key, "atm", 1)
  local fields = rcall("HMGET", key, "opts", "deid")
  local opts = opts_of(fields[1])
  local exhausted = made >= (tonumber(opts["attempts"]) or 1)
  if fields[2] then
    release_dedup(id, fields[2])
    add_dedup_next(fields[2])
  end
  rcall("HDEL", key, "defa")
  local count, age, most, own = keep_rule(opts, "removeOnFail", keep_dead)
  if file_finished(id, key, K_FAILED, count, age, most, own) then
    rcall("HSET", key, "failedReason", reason, "finishedOn", NOW)
    if not own and count > 0 then trim_finished(K_FAILED, count) end
  end
  emit("failed", "jobId", id, "failedReason", reason, "prev", "active")
  if exhausted then
    emit("retries-exhausted", "jobId", id, "attemptsMade", made)
  end
end

-- More is ready and may be fetched: wake another idle worker.
local function wake_if_ready()
  if (rcall("LLEN", K_WAIT) > 0 or rcall("ZCARD", K_PRIO) > 0) and not paused_or_full() then
    mark_ready(false)
  end
end

-- Claim up to `limit` ready jobs for `token`: {next delayed due (0: none), job, ...}.
-- A job the stalled check condemned (defa) is failed here at once, as BullMQ's worker does.
local function fetch(limit, token, lease, name, keep_dead)
  local meta = rcall("HMGET", K_META, "paused", "concurrency", "max", "duration")
  local held = meta[1] ~= false
  promote(held)
  local out = {0}
  if held then return out end
  if meta[2] then limit = math.min(limit, tonumber(meta[2]) - rcall("LLEN", K_ACTIVE)) end
  local rate_max = tonumber(meta[3])
  if rate_max then
    local used = tonumber(rcall("GET", K_LIMITER) or "0")
    if used >= rate_max then
      out[1] = NOW + math.max(rcall("PTTL", K_LIMITER), 1)
      return out
    end
    limit = math.min(limit, rate_max - used)
  end
  local taken = 0
  while taken < limit do
    local id = rcall("RPOPLPUSH", K_WAIT, K_ACTIVE)
    if not id then
      local top = rcall("ZPOPMIN", K_PRIO)
      if #top == 0 then
        rcall("DEL", K_PC)
        break
      end
      id = top[1]
      rcall("LPUSH", K_ACTIVE, id)
    end
    local key = PREFIX .. id
    local job = rcall("HMGET", key, unpack(CLAIM_FIELDS))
    if not job[4] then
      rcall("LREM", K_ACTIVE, -1, id) -- removed by someone else meanwhile
    elseif job[12] then
      rcall("LREM", K_ACTIVE, -1, id)
      bury(id, key, job[12], keep_dead)
    else
      if rate_max and rcall("INCR", K_LIMITER) == 1 then
        rcall("PEXPIRE", K_LIMITER, math.floor(tonumber(meta[4]) or 1000))
      end
      job[8] = (tonumber(job[8]) or 0) + 1
      rcall("SET", key .. ":lock", token, "PX", lease)
      rcall("HSET", key, "processedOn", NOW, "pb", name, "ats", job[8])
      emit("active", "jobId", id, "prev", "waiting")
      job[12] = id
      out[#out + 1] = cjson.encode(job)
      taken = taken + 1
    end
  end
  wake_if_ready()
  out[1] = next_due()
  return out
end

-- A job's state for jexkv: waiting, delayed, active, completed, dead (or unknown).
local function state_of(id)
  if rcall("ZSCORE", K_COMPLETED, id) then return "completed" end
  if rcall("ZSCORE", K_FAILED, id) then return "dead" end
  local score = rcall("ZSCORE", K_DELAYED, id)
  if score then
    if tonumber(score) < DUE_LIMIT then return "waiting" end
    return "delayed"
  end
  if rcall("ZSCORE", K_PRIO, id) then return "waiting" end
  if rcall("LPOS", K_ACTIVE, id) then return "active" end
  if rcall("LPOS", K_WAIT, id) then return "waiting" end
  return "unknown"
end

-- ---------------------------------------------------------------------------------------

-- ---------------------------------------------------------------------------------------
-- Schedules, in BullMQ 6's job-scheduler layout: Q:repeat (a sorted set: schedule id ->
-- the tick whose job waits now) and Q:repeat:<id> (a hash: name, data, opts, pattern or
-- every, tz, limit, startDate, endDate, offset, ic = jobs made). The job of a tick has the id
-- repeat:<id>:<tick> and the schedule's id in its `rjk` field.

-- Add a schedule's job (false, and a `duplicated` event, if a job of that id exists).
local function add_scheduled(id, name, data, opts, delay, priority, sid)
  local key = PREFIX .. id
  if rcall("EXISTS", key) == 1 then
    emit("duplicated", "jobId", id)
    return false
  end
  rcall("INCR", K_ID)
  rcall("HSET", key, "name", name, "data", data, "opts", opts, "timestamp", NOW, "delay", delay,
        "priority", priority, "rjk", sid)
  emit("added", "jobId", id, "name", name)
  if delay > 0 then
    add_delayed(id, NOW + delay)
    emit("delayed", "jobId", id, "delay", NOW + delay)
  else
    push_ready(id, priority, paused_or_full(), "LPUSH")
    emit("waiting", "jobId", id)
  end
  return true
end

-- Remove a schedule's job that has not started (delayed or ready); one that runs or ran stays.
local function drop_pending(id)
  local removed = rcall("ZREM", K_DELAYED, id) + rcall("ZREM", K_PRIO, id)
  removed = removed + rcall("LREM", K_WAIT, 0, id)
  if removed > 0 then
    rcall("DEL", PREFIX .. id, PREFIX .. id .. ":logs")
    emit("removed", "jobId", id, "prev", "waiting")
  end
end

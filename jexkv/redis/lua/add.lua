--[[ add: add jobs; a custom id that is kept already adds nothing.
  KEYS: the queue's fourteen keys; ARGV[1..3]: job key prefix, now, batch (lib.lua).
  ARGV[4]      the jobs, one JSON array of [custom id ("" for a queue-chosen one), name,
               opts (JSON text), delay ms, priority]
  ARGV[4 + i]  job i's data (JSON text), i from 1
  Returns {first, kept}: every job takes one number from Q:id (a queue-chosen id is that
  number), so the numbers run from `first` on; `kept` holds, for each job whose custom id
  was kept already (nothing written for it), its index (from 1), state and hash.
  Due delayed jobs are promoted first, so a new job never overtakes one already due; each
  job's last event trims the stream (MAXLEN ~ opts.maxLenEvents), as BullMQ's add does.
]]
local meta = rcall("HMGET", K_META, "paused", "concurrency", "opts.maxLenEvents")
local held = meta[1] ~= false
if not held and meta[2] then held = rcall("LLEN", K_ACTIVE) >= tonumber(meta[2]) end
local most = meta[3]
if not most then
  most = 10000
  rcall("HSET", K_META, "opts.maxLenEvents", most)
end
promote(held)
local jobs = cjson.decode(ARGV[4])
local kept = {}
local ready = false
local first = rcall("INCRBY", K_ID, #jobs) - #jobs + 1
for i, job in ipairs(jobs) do
  local custom, name, delay, priority = job[1], job[2], job[4], job[5]
  local id = custom
  if id == "" then id = tostring(first + i - 1) end
  local key = PREFIX .. id
  if custom ~= "" and rcall("EXISTS", key) == 1 then
    emit("duplicated", "jobId", id)
    kept[#kept + 1] = i
    kept[#kept + 1] = state_of(id)
    kept[#kept + 1] = rcall("HGETALL", key)
  else
    rcall("HSET", key, "name", name, "data", ARGV[4 + i], "opts", job[3], "timestamp", NOW,
          "delay", delay, "priority", priority)
    emit("added", "jobId", id, "name", name)
    if delay > 0 then
      add_delayed(id, NOW + delay)
      rcall("XADD", K_EVENTS, "MAXLEN", "~", most, "*", "event", "delayed", "jobId", id,
            "delay", NOW + delay)
    else
      if priority == 0 then
        rcall("LPUSH", K_WAIT, id)
      else
        rcall("ZADD", K_PRIO, priority_score(priority), id)
      end
      ready = true
      rcall("XADD", K_EVENTS, "MAXLEN", "~", most, "*", "event", "waiting", "jobId", id)
    end
  end
end
if ready then mark_ready(held) end
return {first, kept}

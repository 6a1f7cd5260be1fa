--[[ add: ARGV[3] = count, then per job: custom id ("" for a queue-chosen one), name, data,
opts (JSON), delay ms, priority. Returns {ids, kept}: every job's id in order, and for each
job whose custom id is kept already (nothing is written for it) its index (from 1), state
and hash. Due delayed jobs are promoted first, so a new job never overtakes one already due. ]]
local held = paused_or_full()
promote(held)
local ids, kept = {}, {}
local ready = false
local count = tonumber(ARGV[3])
for i = 0, count - 1 do
  local base = 4 + i * 6
  local custom, name = ARGV[base], ARGV[base + 1]
  local delay, priority = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local counter = rcall("INCR", K_ID)
  local id = custom
  if id == "" then id = tostring(counter) end
  local key = PREFIX .. id
  ids[i + 1] = id
  if custom ~= "" and rcall("EXISTS", key) == 1 then
    emit("duplicated", "jobId", id)
    kept[#kept + 1] = i + 1
    kept[#kept + 1] = state_of(id)
    kept[#kept + 1] = rcall("HGETALL", key)
  else
    rcall("HSET", key, "name", name, "data", ARGV[base + 2], "opts", ARGV[base + 3],
          "timestamp", NOW, "delay", delay, "priority", priority)
    emit("added", "jobId", id, "name", name)
    if delay > 0 then
      add_delayed(id, NOW + delay)
      emit("delayed", "jobId", id, "delay", NOW + delay)
    else
      if priority == 0 then
        rcall("LPUSH", K_WAIT, id)
      else
        rcall("ZADD", K_PRIO, priority_score(priority), id)
      end
      ready = true
      emit("waiting", "jobId", id)
    end
  end
end
if ready then mark_ready(held) end
trim_events()
return {ids, kept}

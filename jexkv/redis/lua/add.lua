--[[ add: ARGV[3] = count, then per job: custom id ("" for a queue-chosen one), name, data,
opts (JSON), delay ms, priority. Returns per job {id} when added, or {id, state, hash} when a
job with that custom id is kept already (nothing is written for it).
Due delayed jobs are promoted first, so a new job never overtakes one that is due already. ]]
local held = paused_or_full()
promote(held)
local out = {}
local count = tonumber(ARGV[3])
for i = 0, count - 1 do
  local base = 4 + i * 6
  local custom, name, data, opts = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local delay, priority = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local counter = rcall("INCR", K_ID)
  local id = custom
  if id == "" then id = tostring(counter) end
  local key = PREFIX .. id
  if custom ~= "" and rcall("EXISTS", key) == 1 then
    emit("duplicated", "jobId", id)
    out[#out + 1] = {id, state_of(id), rcall("HGETALL", key)}
  else
    rcall("HSET", key, "name", name, "data", data, "opts", opts, "timestamp", NOW,
          "delay", delay, "priority", priority)
    emit("added", "jobId", id, "name", name)
    if delay > 0 then
      add_delayed(id, NOW + delay)
      emit("delayed", "jobId", id, "delay", NOW + delay)
    else
      push_ready(id, priority, held, "LPUSH")
      emit("waiting", "jobId", id)
    end
    out[#out + 1] = {id}
  end
end
trim_events()
return out

--[[ schedules: the queue's schedules.
  ARGV[4]  the schedule id to start after ("" : from the first), by id
  ARGV[5]  how many at most
  Returns, per schedule, {id, current tick, hash fields (HGETALL), state of that tick's job}.
  Members of Q:repeat without a hash (BullMQ 5's legacy repeatable jobs) are left out.
]]
local repeat_key = PREFIX .. "repeat"
local ids = rcall("ZRANGE", repeat_key, 0, -1)
table.sort(ids)
local out = {}
local limit = tonumber(ARGV[5])
for _, sid in ipairs(ids) do
  if #out >= limit then break end
  if sid > ARGV[4] then
    local fields = rcall("HGETALL", repeat_key .. ":" .. sid)
    if #fields > 0 then
      local tick = rcall("ZSCORE", repeat_key, sid)
      out[#out + 1] = {sid, tick, fields, state_of("repeat:" .. sid .. ":" .. tick)}
    end
  end
end
return out

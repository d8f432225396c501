-- Take abandoned messages back out of a queue, keeping the others in their order
-- (producer/inflight/withdraw.py).
-- KEYS: the queue. ARGV: task ids. Returns the ids whose messages were removed.
--! include lib_message
local unwanted = {}
for i = 1, #ARGV do unwanted[ARGV[i]] = true end
local kept, removed = {}, {}
for _, text in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local id = message_id(decoded(text))
  if id and unwanted[id] then
    removed[#removed + 1] = id
  else
    kept[#kept + 1] = text
  end
end
if #removed > 0 then
  redis.call('DEL', KEYS[1])
  for first = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, first, math.min(first + 999, #kept)))
  end
end
return removed

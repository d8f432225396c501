-- The tasks neither queued nor held by a worker (producer/inflight/lost.py).
-- KEYS: the queue, the unacked hash. ARGV: task ids. Returns the ids found in neither.
--! include lib_message
local wanted = {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
local function seen(id)
  if id then wanted[id] = nil end
end
for _, text in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do seen(message_id(decoded(text))) end
for _, text in ipairs(redis.call('HVALS', KEYS[2])) do
  local entry = decoded(text)
  if entry then seen(message_id(entry[1])) end
end
local missing = {}
for id in pairs(wanted) do missing[#missing + 1] = id end
return missing

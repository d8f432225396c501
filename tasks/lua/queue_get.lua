-- KEYS: items, leased (id -> lease end), payloads (id -> item), the ready wake list, the space
-- wake list, the id counter. ARGV: lease seconds (0: not reliable). Returns {id, item} (id ''
-- when not leased), or nil when the queue is empty.
--! include lib_clock
--! include lib_queue
local now = server_now()
requeue_ended(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now)
local item = redis.call('LPOP', KEYS[1])
if not item then return nil end
if tonumber(ARGV[1]) == 0 then
  wake(KEYS[5], 3600)
  return {'', item}
end
local id = tostring(redis.call('INCR', KEYS[6]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
redis.call('HSET', KEYS[3], id, item)
return {id, item}

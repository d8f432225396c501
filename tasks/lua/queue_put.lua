-- KEYS: items, leased, payloads, ready. ARGV: the item, maxsize (0: unbounded). 1 put, 0 full.
--! include lib_clock
--! include lib_queue
requeue_ended(KEYS[1], KEYS[2], KEYS[3], KEYS[4], server_now())
local size = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if tonumber(ARGV[2]) > 0 and size >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
wake(KEYS[4], 3600)
return 1

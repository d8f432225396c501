-- KEYS: holders, extra permits. ARGV: value. Returns the free slots, expired leases dropped.
--! include lib_clock
local now = server_now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local extra = tonumber(redis.call('GET', KEYS[2]) or '0')
return math.max(tonumber(ARGV[1]) + extra - redis.call('ZCARD', KEYS[1]), 0)

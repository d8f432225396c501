-- KEYS: the holders (a sorted set: token -> when its lease ends), the extra permits (released
-- without a hold). ARGV: token, value, lease (s). Returns 1 when taken.
--! include lib_clock
local now = server_now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local extra = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) + extra then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
  return 1
end
return 0

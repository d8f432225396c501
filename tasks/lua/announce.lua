-- A worker announces itself on a queue (tasks/presence.py), by the server's clock.
-- KEYS: the queue's set, its info hash. ARGV: node name, description (JSON), seconds to live.
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0

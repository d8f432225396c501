-- A worker's announcement withdrawn (tasks/presence.py).
-- KEYS: the queue's set, its info hash. ARGV: node name.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 0

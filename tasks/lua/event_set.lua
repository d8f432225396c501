-- A cluster-wide Event is set (tasks/coordination/events.py).
-- KEYS: the flag, the channel. Set, then tell the waiters.
redis.call('SET', KEYS[1], 1)
redis.call('PUBLISH', KEYS[2], 1)
return 1

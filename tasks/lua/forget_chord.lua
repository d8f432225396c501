-- KEYS: DISCARDED, the gather task's result key, the chord's group key, then its CHORD_SUFFIXES
-- keys (tasks/backend.py). An abandoned chord none of whose parts can return any more (each was
-- withdrawn, or has ended): its marks and keys go.
redis.call('ZREM', KEYS[1], KEYS[2], KEYS[3])
redis.call('DEL', unpack(KEYS, 4))
return 0

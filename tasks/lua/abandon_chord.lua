-- An abandoned map's chord: marked, and its keys deleted (tasks/backend.py).
-- KEYS: DISCARDED, the chord's group key, then its CHORD_SUFFIXES keys. ARGV: until when.
--! include lib_marks
redis.call('ZADD', KEYS[1], ARGV[1], KEYS[2])
redis.call('DEL', unpack(KEYS, 3))
expire_with_last_mark(KEYS[1])
return 0

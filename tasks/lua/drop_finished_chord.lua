-- KEYS: DISCARDED, the chord's group key, then its CHORD_SUFFIXES keys (tasks/backend.py). An
-- abandoned chord (its map was terminated) goes whole, now and after each later part's return. A
-- finished one has its last part's claim (.c) and no size (.s): Celery deletes the size last,
-- after reading the results.
if redis.call('ZSCORE', KEYS[1], KEYS[2]) then
  redis.call('DEL', unpack(KEYS, 3))
elseif redis.call('EXISTS', KEYS[3]) == 1 and redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[7])
end
return 0

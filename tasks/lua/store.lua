-- A result's store (tasks/backend.py), dropped if discarded or twinned.
-- KEYS: the result key, DISCARDED, the task's twin mark, the task's data hash (tasks/blobs.py).
-- ARGV: the encoded meta, seconds to keep it (0: for ever), SUCCEEDED: a stored success is never
-- overwritten (by a lost worker's late failure), as in Celery's own read-then-write store,
-- REPLAY_GRACE, then the result's arrays as field, bytes pairs: written only with the result,
-- so that a dropped result leaves no bytes behind. A discarded result is dropped and its mark
-- removed, with an empty message on its channel: that task has ended.
-- Returns 1: stored; 0: dropped; -1: dropped as discarded, with a twin mark 'dropped' for
-- REPLAY_GRACE, so that the same store replayed (its reply lost) is dropped again: the store
-- deletes that mark once the reply came back (no replay then). A twinned task's first store,
-- kept or dropped, marks the other run's as dropped.
local twin = redis.call('GET', KEYS[3])
if twin == 'stored' or twin == 'dropped' then
  redis.call('SET', KEYS[3], 'dropped', 'EX', ARGV[4])
  redis.call('PUBLISH', KEYS[1], '')
  return 0
end
if twin then
  redis.call('SET', KEYS[3], 'stored', 'KEEPTTL')
end
if redis.call('ZREM', KEYS[2], KEYS[1]) == 1 then
  redis.call('PUBLISH', KEYS[1], '')
  if twin then
    return 0
  end
  redis.call('SET', KEYS[3], 'dropped', 'EX', ARGV[4])
  return -1
end
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[3]) == ARGV[3] then
  return 0
end
if #ARGV > 4 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 5))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]) > 0 and ARGV[2] or 86400)
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1

-- Abandoned tasks' results deleted, and those not stored yet marked to be dropped (tasks/backend.py).
-- KEYS: DISCARDED, then result keys. ARGV: now, until when a mark is kept (both epoch seconds).
-- Returns the positions (from 0) of the keys not stored yet: those tasks are still in flight.
--! include lib_marks
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local pending = {}
for i = 2, #KEYS do
  if redis.call('DEL', KEYS[i]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[2], KEYS[i])
    pending[#pending + 1] = i - 2
  end
end
expire_with_last_mark(KEYS[1])
return pending

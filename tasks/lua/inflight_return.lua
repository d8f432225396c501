-- A held message back on its queue (tasks/inflight.py): a reject, a shutdown, a gone consumer.
-- KEYS: an in-flight list, the queue, the holder's liveness key. ARGV: the message as held, the
-- message to queue (marked redelivered), "1" to queue it at the tail (last out), "1" to require
-- the holder to be silent. Returns 1 if it moved the message back, 0 if it was not held (acked,
-- or returned by another sweep), -1 if the holder is alive again.
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
else
  redis.call('RPUSH', KEYS[2], ARGV[2])
end
return 1

-- Forgets a consumer that is silent and holds nothing (tasks/inflight.py).
-- KEYS: the consumers' set, the consumer's in-flight list, its liveness key. ARGV: the consumer.
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('LLEN', KEYS[2]) == 0 then
  return redis.call('SREM', KEYS[1], ARGV[1])
end
return 0

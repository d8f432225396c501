-- KEYS: holders, extra permits, the wake list. ARGV: token ('' for none held), bounded (1/0),
-- seconds to keep the wake list. Returns 1 released, 0 not held (or lease over) and bounded.
--! include lib_wake
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  wake(KEYS[3], ARGV[3])
  return 1
end
if ARGV[2] == '1' then return 0 end
redis.call('INCR', KEYS[2])
wake(KEYS[3], ARGV[3])
return 1

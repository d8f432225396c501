-- KEYS: leased, payloads, space. ARGV: id. 1 done, 0 its lease had ended (it was requeued).
--! include lib_wake
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
wake(KEYS[3], 3600)
return 1

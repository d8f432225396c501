-- KEYS: items, leased. Items waiting and leased.
return redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])

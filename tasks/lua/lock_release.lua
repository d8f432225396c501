-- A Lock's release, which also wakes a waiter (tasks/coordination/locks.py: _WakingLock).
-- KEYS: the lock, its wake list. ARGV: the holder's token, seconds to keep the wake list.
--! include lib_wake
local token = redis.call('GET', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
wake(KEYS[2], ARGV[2])
return 1

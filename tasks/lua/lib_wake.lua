-- One waiter on wake list `list` may go now; the list is kept `seconds`, with at most WAKE_KEEP
-- tokens: one per release nobody waited for (tasks/coordination).
local WAKE_KEEP = 64
local function wake(list, seconds)
  redis.call('RPUSH', list, 1)
  redis.call('LTRIM', list, -WAKE_KEEP, -1)
  redis.call('EXPIRE', list, seconds)
end

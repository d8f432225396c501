-- A reliable queue's items whose lease ended go back to the head of the queue, in the order
-- they were taken, each waking a getter (tasks/coordination/queues.py).
--! include lib_wake
local function requeue_ended(items, leased, payloads, ready, now)
  local ended = redis.call('ZRANGEBYSCORE', leased, '-inf', now)
  for i = #ended, 1, -1 do
    local item = redis.call('HGET', payloads, ended[i])
    if item then
      redis.call('LPUSH', items, item)
      wake(ready, 3600)
    end
    redis.call('HDEL', payloads, ended[i])
  end
  if #ended > 0 then redis.call('ZREM', leased, unpack(ended)) end
end

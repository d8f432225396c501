-- DISCARDED itself expires with its last mark: a mark whose task never ends (its worker was
-- lost) does not keep the key for longer than its own time.
local function expire_with_last_mark(discarded)
  local last = redis.call('ZRANGE', discarded, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('EXPIREAT', discarded, math.ceil(tonumber(last[2])))
  end
end

-- KEYS: holders. Returns ms until the earliest lease ends (-1: none held).
--! include lib_clock
local now = server_now()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return -1 end
return math.floor((tonumber(first[2]) - now) * 1000)

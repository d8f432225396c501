-- The server's time in seconds, so that hosts' clocks need not agree.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

-- A redelivered run starts (tasks/backend.py); if the other run's result is already stored,
-- this run's store will be dropped.
-- KEYS: the result key, the task's twin mark. ARGV: seconds to keep the mark.
local state = 'running'
if redis.call('EXISTS', KEYS[1]) == 1 then
  state = 'stored'
end
redis.call('SET', KEYS[2], state, 'EX', ARGV[1])
return 0

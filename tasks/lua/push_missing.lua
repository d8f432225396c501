-- A publish batch cut off by a broker restart (tasks/publish_batch.py): push each message
-- whose task is nowhere, once.
-- KEYS: the queue, the unacked hash, the consumers' set. ARGV: the in-flight lists' prefix, then
-- (task id, message) pairs. Returns how many it pushed.
--! include lib_present
local prefix = table.remove(ARGV, 1)
local present = task_ids_present(KEYS[1], KEYS[2], KEYS[3], prefix)
local pushed = 0
for i = 1, #ARGV, 2 do
  if not present[ARGV[i]] then
    redis.call('LPUSH', KEYS[1], ARGV[i + 1])
    present[ARGV[i]] = true
    pushed = pushed + 1
  end
end
return pushed

-- The tasks neither queued nor held by a worker (producer/inflight/lost.py).
-- KEYS: the queue, the unacked hash, the consumers' set. ARGV: the in-flight lists' prefix, then
-- task ids. Returns the ids found nowhere.
--! include lib_present
local prefix = table.remove(ARGV, 1)
local present = task_ids_present(KEYS[1], KEYS[2], KEYS[3], prefix)
local missing = {}
for i = 1, #ARGV do
  if not present[ARGV[i]] then missing[#missing + 1] = ARGV[i] end
end
return missing

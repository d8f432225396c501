-- The set (table) of task ids whose message is in `queue`, in kombu's `unacked` hash or in the
-- in-flight list of a consumer named in `consumers`: one script reads them all, so that a take
-- between two reads cannot hide a message.
--! include lib_message
local function task_ids_present(queue, unacked, consumers, prefix)
  local present = {}
  local function seen(id)
    if id then present[id] = true end
  end
  for _, text in ipairs(redis.call('LRANGE', queue, 0, -1)) do seen(message_id(decoded(text))) end
  for _, text in ipairs(redis.call('HVALS', unacked)) do
    local entry = decoded(text)
    if entry then seen(message_id(entry[1])) end
  end
  for _, consumer in ipairs(redis.call('SMEMBERS', consumers)) do
    for _, text in ipairs(redis.call('LRANGE', prefix .. consumer, 0, -1)) do
      seen(message_id(decoded(text)))
    end
  end
  return present
end

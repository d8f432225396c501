-- A kombu message's task id, from its JSON text in a queue or in the unacked hash.
local function decoded(text)
  local ok, value = pcall(cjson.decode, text)
  if ok and type(value) == 'table' then return value end
end
local function message_id(message)
  if type(message) == 'table' and type(message.headers) == 'table' then
    return message.headers.id
  end
end

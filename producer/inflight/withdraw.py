"""Take a pool's abandoned messages back out of the queue, so that no worker has to meet them.

A revoked message still sits in the queue until a worker takes it, checks it against its revoked
set and drops it: 10,000 of them kept a worker busy for over a minute, deaf to pings. One script
removes them where they wait instead, atomically, keeping the others in their order; only those
already taken by a worker need a revoke.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

# KEYS: the queue. ARGV: task ids. Returns the ids whose messages were removed.
_WITHDRAW = """
local unwanted = {}
for i = 1, #ARGV do unwanted[ARGV[i]] = true end
local kept, removed = {}, {}
for _, text in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, message = pcall(cjson.decode, text)
  local id = ok and type(message) == 'table' and type(message.headers) == 'table' and message.headers.id
  if id and unwanted[id] then
    removed[#removed + 1] = id
  else
    kept[#kept + 1] = text
  end
end
if #removed > 0 then
  redis.call('DEL', KEYS[1])
  for first = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, first, math.min(first + 999, #kept)))
  end
end
return removed
"""


def withdraw_queued(app: Celery, queue: str, task_ids: Sequence[str]) -> list[str]:
    """Remove these tasks' messages from `queue`; the ids of those removed (not yet taken)."""
    if not task_ids:
        return []
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel
        removed = channel.client.eval(_WITHDRAW, 1, queue, *task_ids)
    return [str(task_id, "utf-8") if isinstance(task_id, bytes) else str(task_id) for task_id in removed]

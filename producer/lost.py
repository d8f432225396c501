"""Which of a pool's tasks the broker no longer has: after a failover, or a restart that kept nothing.

Redis replicates asynchronously: a replica promoted by Sentinel may lack the last writes its
master acknowledged, and a server restarted without persistence has none. A task sent by this
pool is then nowhere: not queued, not held by a worker (kombu keeps what a worker took in its
`unacked` hash until the ack, which farpool sends only after the result is stored), and with no
result. Waiting for it would wait for ever. The ledger asks this module when the server it
talks to has changed (another run id), twice a second apart. A worker holds what it took in its
own in-flight list (tasks/inflight.py), moved there by the take itself; kombu's `unacked` hash
holds what a worker of a farpool before it took, and what was taken outside that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from tasks.inflight import CONSUMERS, INFLIGHT_PREFIX

UNACKED = "unacked"  # kombu's Redis transport default (unacked_key)

# KEYS: the queue, the unacked hash, the consumers' set. ARGV: the in-flight lists' prefix, then
# task ids. Returns the ids found nowhere. The in-flight lists are named by the consumers' set,
# read in the same script, so that a take between two reads cannot hide a message.
_MISSING = """
local prefix = table.remove(ARGV, 1)
local wanted = {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
local function decoded(text)
  local ok, value = pcall(cjson.decode, text)
  if ok and type(value) == 'table' then return value end
end
local function seen(message)
  if message and type(message.headers) == 'table' and message.headers.id then
    wanted[message.headers.id] = nil
  end
end
for _, text in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do seen(decoded(text)) end
for _, text in ipairs(redis.call('HVALS', KEYS[2])) do
  local entry = decoded(text)
  if entry then seen(entry[1]) end
end
for _, consumer in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  for _, text in ipairs(redis.call('LRANGE', prefix .. consumer, 0, -1)) do seen(decoded(text)) end
end
local missing = {}
for id in pairs(wanted) do missing[#missing + 1] = id end
return missing
"""


def missing_tasks(app: Celery, queue: str, task_ids: Sequence[str]) -> list[str]:
    """The tasks among `task_ids` that have no result, are not queued and no worker holds."""
    if not task_ids:
        return []
    backend: Any = app.backend
    stored = backend.client.mget([backend.get_key_for_task(task_id) for task_id in task_ids])
    waiting = [task_id for task_id, value in zip(task_ids, stored, strict=True) if value is None]
    if not waiting:
        return []
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel
        client = channel.client
        found = client.eval(_MISSING, 3, queue, UNACKED, CONSUMERS, INFLIGHT_PREFIX, *waiting)
    return sorted(str(task_id, "utf-8") if isinstance(task_id, bytes) else str(task_id) for task_id in found)

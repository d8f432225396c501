"""A map_async's or apply_async's record (`farpool-call-<id>`: its task, its chunk ids), by which
any process finds the call until it is collected or expires."""

from __future__ import annotations

from typing import Any

from tasks.wire import CallRecord, load_record, record_key


def find_record(backend: Any, call_id: str) -> CallRecord | dict[str, Any] | None:
    """The record of call `call_id` in this result backend; {} when only its result is stored;
    None when neither is (never sent, collected, or expired)."""
    record, stored = backend.client.mget([record_key(call_id), backend.get_key_for_task(call_id)])
    if record is not None:
        return load_record(record)
    return {} if stored is not None else None

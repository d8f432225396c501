"""imap's chunks on their way out: one message each, its arrays stored first, labelled for Flower."""

from __future__ import annotations

import itertools
from typing import Any

from celery import Celery
from celery.utils import uuid

from producer.sending.arrays import PoolArrays
from producer.sending.canvas import chunk_label, chunk_signature, short_id
from producer.sending.outgoing import Outgoing
from producer.sending.publishing import sending


class ImapChunks:
    """What IMapIterator calls to send a chunk: (items, index of the first) -> its task id."""

    def __init__(self, app: Celery, arrays: PoolArrays, name: str, star: bool, timeout: float | None) -> None:
        self._app, self._arrays, self._name = app, arrays, name
        self._star, self._timeout = star, timeout
        self._call = f"imap {short_id(uuid())}"
        self._sequence = itertools.count(1)

    def __call__(self, items: list[Any], start: int) -> str:
        label = chunk_label(self._name, len(items), self._call, str(next(self._sequence)))
        outgoing = Outgoing(items, self._arrays.max_payload)
        signature = chunk_signature(
            self._app, self._name, outgoing.items, start, self._star, label, True, self._timeout
        )
        self._arrays.store(str(signature.id), outgoing.refs(0, len(items)))
        self._arrays.reply_in_memory([signature])
        with sending(self._app) as producer:
            signature.apply_async(producer=producer)
        return str(signature.id)

"""What a pool's given-up tasks leave on the server: deleted now, or dropped when they store.

Abandoned tasks (a failed map's other chunks, terminate(), an imap closed early) lose what they
stored and their arrays' bytes; those still queued are taken back out of the queue; those still
running are revoked, and whatever they store later is dropped (tasks/backend.py's marks).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from celery import Celery

from producer.inflight.patience import patiently
from producer.inflight.table import InFlight
from tasks.blobs import data_keys
from tasks.wire import DISCARDED, KEY_BATCH, REVOKE_COMMAND, record_key

Withdraw = Callable[[Sequence[str]], list[str]]  # takes queued tasks back; returns those it took
logger = logging.getLogger("farpool")
DELETE_PATIENCE = 30.0  # seconds a collection waits for a restarting broker to delete its results


def delete_keys(client: Any, keys: Sequence[str | bytes]) -> None:
    for start in range(0, len(keys), KEY_BATCH):
        client.delete(*keys[start : start + KEY_BATCH])


def drop_abandoned(
    app: Celery,
    task_ids: Sequence[str],
    records: Iterable[str],
    arrived: set[str],
    remember: int,
    withdraw: Withdraw | None,
    terminate: bool,
) -> list[str]:
    """Drop these abandoned tasks' traces on the server (records: their map_async calls); return
    those still running, which were revoked (`terminate`: their processes killed)."""
    backend: Any = app.backend
    records = list(records)
    stored: list[str | bytes] = [record_key(record_id) for record_id in records]
    stored += [backend.get_key_for_task(task_id) for task_id in arrived]
    stored += data_keys(task_ids)  # their arrays: a task still running has read its own already
    delete_keys(backend.client, stored)
    pending = [task_id for task_id in task_ids if task_id not in arrived]
    in_flight: list[str] = backend.discard(pending, remember) if pending else []
    for record_id in records:  # a map_async's chord: its withdrawn parts will never return
        backend.abandon_chord(record_id, remember)
    if in_flight and withdraw is not None:
        withdrawn = set(withdraw(in_flight))
        backend.withdrawn(sorted(withdrawn))
        in_flight = [task_id for task_id in in_flight if task_id not in withdrawn]
    if in_flight:
        app.control.broadcast(REVOKE_COMMAND, arguments={"task_id": in_flight, "terminate": terminate})
    return in_flight


class Cleanup:
    """A pool's clean-up: results deleted once collected; abandoned work dropped, withdrawn, revoked
    and waited for (drained) until it has ended; an abandoned chord forgotten once none of its
    parts can return."""

    def __init__(
        self,
        app: Celery,
        table: InFlight,
        remember: int,
        given_up: Callable[[], bool],
        withdraw: Withdraw | None = None,
        release: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.app, self._table, self.remember = app, table, remember
        self.backend: Any = app.backend  # tasks/backend.py's, with discard()
        self._given_up = given_up
        self._withdraw = withdraw
        self._release = release  # what else these tasks held (same-host arrays), once collected or abandoned
        self._chords: dict[str, set[bytes]] = {}  # abandoned map_async chords: their parts draining
        self._lock = threading.Lock()

    def key(self, task_id: str) -> bytes:
        key: bytes = self.backend.get_key_for_task(task_id)
        return key

    def collect(self, task_ids: Sequence[str], record_id: str | None = None) -> None:
        """These results were handed to their collector: delete them (and the call's record)."""
        keys: list[str | bytes] = [self.key(task_id) for task_id in task_ids]
        keys += data_keys(task_ids)
        if record_id is not None:
            keys.append(record_key(record_id))
        self._table.collected(task_ids, record_id)
        try:  # through a broker restart (a DEL twice deletes nothing more), else they expire
            patiently(functools.partial(delete_keys, self.backend.client, keys), DELETE_PATIENCE)
        except redis.RedisError as error:
            logger.warning("could not delete %d collected results (%s)", len(keys), error)
        if self._release is not None:
            self._release(task_ids)

    def abandon(self, task_ids: Sequence[str], terminate: bool = False) -> None:
        """Give up on these tasks: delete what they stored; revoke those still in flight, and drop
        whatever they store later. Nothing once the table is closed: its pool gave up on all."""
        if self._table.closed:
            return
        records, arrived = self._table.abandon([self.key(task_id) for task_id in task_ids], task_ids)
        if not task_ids:
            return
        if self._release is not None:
            self._release(task_ids)
        try:
            if self._given_up():
                raise redis.ConnectionError("the broker does not answer")
            self._drop_on_server(task_ids, records, arrived, terminate)
        except redis.RedisError as error:
            logger.warning(
                "could not tell the broker to drop %d abandoned tasks (%s): their results expire after %d s",
                len(task_ids),
                error,
                self.remember,
            )

    def _drop_on_server(
        self, task_ids: Sequence[str], records: list[str], arrived: set[str], terminate: bool
    ) -> None:
        in_flight = drop_abandoned(
            self.app, task_ids, records, arrived, self.remember, self._withdraw, terminate
        )
        if in_flight and terminate:
            return  # what was terminated may still store: the marks drop it, for a day
        # A map_async's chord sends its gather task (whose id is the map's, a record's) only once
        # its last chunk returned, which an abandoned chord never does: it is not waited for, and
        # its marks go once the chunks have ended (backend.forget_chord).
        keys = [self.key(task_id) for task_id in in_flight if task_id not in records]
        with self._lock:
            self._chords.update((record_id, set(keys)) for record_id in records)
        if keys:
            if self._table.drain(keys):
                self.check_drained(keys)
        else:
            self._chords_ended([])

    def check_drained(self, keys: list[bytes]) -> None:
        """A task has ended once its discard mark is gone (the worker's store removed it)."""
        if not keys:
            return
        scores = self.backend.client.zmscore(DISCARDED, keys)
        self.drained([key for key, score in zip(keys, scores, strict=True) if score is None])

    def drained(self, keys: list[bytes]) -> None:
        ended = self._table.drained(keys)
        if ended:
            self._chords_ended(list(ended))

    def _chords_ended(self, keys: list[bytes]) -> None:
        """These abandoned tasks ended: an abandoned chord none of whose parts can still return
        has its mark and keys deleted (they were kept to drop what a late part left)."""
        with self._lock:
            for parts in self._chords.values():
                parts.difference_update(keys)
            ended = [record_id for record_id, parts in self._chords.items() if not parts]
            for record_id in ended:
                del self._chords[record_id]
        for record_id in ended:
            with contextlib.suppress(redis.RedisError):  # else its marks expire with the set
                self.backend.forget_chord(record_id)

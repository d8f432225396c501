"""Tasks that coordinate through farpool's Lock, Semaphore, Queue and Event (tests/test_coordination.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from celery import shared_task

from tasks.coordination import Event, Lock, Queue, Semaphore


@shared_task(name="usertasks_sync.increment")
def increment(path: str, lock: Lock | None = None) -> int:
    """Read a counter from a file and write it back plus one: a lost update without the lock."""
    if lock is not None:
        lock.acquire()
    try:
        counter = Path(path)
        value = int(counter.read_text() or 0)
        time.sleep(0.001)
        counter.write_text(str(value + 1))
        return value
    finally:
        if lock is not None:
            lock.release()


@shared_task(name="usertasks_sync.limited")
def limited(semaphore: Semaphore, log: str, hold: float) -> None:
    """Hold a slot for `hold` s; log when this call started and ended, one line each."""
    with semaphore:
        began = time.time()
        time.sleep(hold)
        ended = time.time()
    with open(log, "a") as lines:
        lines.write(f"{began} {ended}\n")


@shared_task(name="usertasks_sync.die_holding")
def die_holding(lock: Lock, marker: str) -> str:
    """First run: take the lock and die (SIGKILL) without releasing it. A later run: take it."""
    lock.acquire()
    if not os.path.exists(marker):
        Path(marker).write_text(str(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)
    lock.release()
    return "ran again"


@shared_task(name="usertasks_sync.after_lock")
def after_lock(lock: Lock) -> float:
    """When this call got the lock (epoch seconds)."""
    with lock:
        return time.time()


@shared_task(name="usertasks_sync.stream")
def stream(queue: Queue, x: int, parts: int) -> int:
    """Put `parts` partial results [x, i] on the queue, in order, then return x."""
    for part in range(parts):
        queue.put([x, part])
    return x


@shared_task(name="usertasks_sync.wait_for")
def wait_for(event: Event, timeout: float) -> Any:
    began = time.time()
    return [event.wait(timeout), time.time() - began]


@shared_task(name="usertasks_sync.take_and_die")
def take_and_die(queue: Queue, marker: str) -> Any:
    """First run: get an item from a reliable queue and die before handling it."""
    item = queue.get(timeout=10)
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    queue.task_done()
    return item

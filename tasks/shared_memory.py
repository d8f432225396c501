"""Same-host arrays: bytes in the sender's anonymous memory file, read by the worker without a copy.

When every worker of the queue runs on the producer's own machine (same boot, same network
namespace: tasks/presence.py announces it), a message's arrays need not cross the broker. The
producer writes them into a memfd (an anonymous file that exists only while a process holds it
open) and the message says where: its pid, the descriptor, and the file's name, a random token.
A worker on the same machine opens `/proc/<pid>/fd/<fd>`, checks the name (a reused pid or
descriptor is another file), and copies the bytes into the task's own array: writable, and its
writes stay its own, as multiprocessing's are. No Redis round trip, no socket, no parsing.

Nothing can be left behind: the kernel frees the file when the producer closes it (its call was
collected or abandoned) or dies, SIGKILL included. A worker that cannot open it (another host,
the producer gone) reads the Redis copy if there is one (tasks/blobs.py), or fails, naming why.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
from collections.abc import Sequence
from functools import cache
from typing import Any

from tasks.wire import SHARED_MEMORY_PREFIX

NAME_PREFIX = SHARED_MEMORY_PREFIX


@cache
def machine_id() -> str:
    """This machine and network namespace: equal for two processes that can share memory files
    and reach each other's loopback (different for the hosts of tests/hostbed.py)."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as file:
                parts.append(file.read().strip())
        except OSError:
            return ""
    try:
        parts.append(os.readlink("/proc/self/ns/net"))
    except OSError:
        return ""
    return ":".join(parts)


def available() -> bool:
    return hasattr(os, "memfd_create") and bool(machine_id())


class Segment:
    """One memory file holding the bytes of several arrays, one after the other."""

    def __init__(self, buffers: Sequence[Any]) -> None:
        self.token = secrets.token_hex(8)
        self.fd = os.memfd_create(NAME_PREFIX + self.token, os.MFD_CLOEXEC)
        self.offsets: list[int] = []
        position = 0
        try:
            for buffer in buffers:
                self.offsets.append(position)
                view = memoryview(buffer).cast("B")
                while view:
                    written = os.write(self.fd, view)
                    view = view[written:]
                    position += written
        except BaseException:
            os.close(self.fd)
            raise
        self.size = position

    def where(self, offset: int) -> dict[str, Any]:
        """What a message says of one array in this file."""
        return {"machine": machine_id(), "pid": os.getpid(), "fd": self.fd, "name": self.token, "at": offset}

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def read_shared(where: Any, length: int, mapped: bool = False, writable: bool = True) -> Any:
    """`length` bytes a same-host sender shared; None if this process cannot reach them (another
    machine, the sender gone, a malformed description).

    `mapped`: a mapping of the file (no copy; copy-on-write if `writable`), for the few values a
    process keeps on purpose (put values): Python's mmap holds a descriptor, and the sender's
    memory, for as long as the array lives, and an array in a failed task's traceback can live
    until the next garbage collection. Otherwise a copy (a NumPy uint8 array), at about a
    millisecond per 8 MB.
    """
    if not isinstance(where, dict) or where.get("machine") != machine_id() or not machine_id():
        return None
    pid, fd, name, offset = where.get("pid"), where.get("fd"), where.get("name"), where.get("at")
    if not isinstance(name, str) or not all(type(n) is int and n >= 0 for n in (pid, fd, offset)):
        return None
    path = f"/proc/{pid}/fd/{fd}"
    try:
        if os.readlink(path) != f"/memfd:{NAME_PREFIX}{name} (deleted)":
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    if mapped:
        return _mapped(descriptor, offset, length, writable)
    from tasks.arrays import import_numpy

    buffer = import_numpy().empty(length, dtype="u1")
    try:
        view, position = memoryview(buffer), offset
        while view:
            count = os.preadv(descriptor, [view], position)
            if count == 0:
                return None  # shorter than the message says
            view, position = view[count:], position + count
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return buffer


def _mapped(descriptor: int, offset: int, length: int, writable: bool) -> memoryview | None:
    try:
        size = os.fstat(descriptor).st_size
        if offset + length > size:
            return None
        if length == 0:
            return memoryview(bytearray())
        if writable:
            flags, protection = mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE
        else:
            flags, protection = mmap.MAP_SHARED, mmap.PROT_READ
        mapping = mmap.mmap(descriptor, size, flags=flags, prot=protection)
    except OSError:
        return None
    finally:
        os.close(descriptor)  # the mapping keeps a descriptor of its own
    return memoryview(mapping)[offset : offset + length]

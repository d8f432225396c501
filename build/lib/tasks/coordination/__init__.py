"""Locks, semaphores, queues and events shared by a producer and its tasks, by name.

multiprocessing's synchronization primitives, across the cluster: see each module.
"""

from tasks.coordination.events import Event
from tasks.coordination.locks import BoundedSemaphore, Lock, Semaphore
from tasks.coordination.queues import Queue

__all__ = ["BoundedSemaphore", "Event", "Lock", "Queue", "Semaphore"]

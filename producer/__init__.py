"""farpool's producer: multiprocessing.Pool's API, run on Celery workers."""

from producer.packages import check_own_packages

check_own_packages()  # before `tasks` or `config` is imported: a user's own file may shadow them

from producer.advice import Advice, advise
from producer.attach import result
from producer.errors import (
    BrokerUnavailable,
    FarpoolError,
    LostTasks,
    NoWorkersError,
    TimeoutError,
    UnknownResult,
)
from producer.pool import Pool
from producer.process import Process
from producer.results import AsyncResult, MapResult
from producer.sending.handles import PutHandle
from tasks.blobs import HandleDeleted
from tasks.completed import CompletedProgram
from tasks.coordination import BoundedSemaphore, Event, Lock, Queue, Semaphore
from tasks.programs import run

__all__ = [
    "Advice",
    "AsyncResult",
    "BoundedSemaphore",
    "BrokerUnavailable",
    "CompletedProgram",
    "Event",
    "FarpoolError",
    "HandleDeleted",
    "Lock",
    "LostTasks",
    "MapResult",
    "NoWorkersError",
    "Pool",
    "Process",
    "PutHandle",
    "Queue",
    "Semaphore",
    "TimeoutError",
    "UnknownResult",
    "advise",
    "result",
    "run",
]

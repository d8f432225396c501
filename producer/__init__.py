"""farpool's producer: multiprocessing.Pool's API, run on Celery workers."""

from producer.packages import check_own_packages

check_own_packages()  # before `tasks` or `config` is imported: a user's own file may shadow them

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

__all__ = [
    "AsyncResult",
    "BrokerUnavailable",
    "FarpoolError",
    "LostTasks",
    "MapResult",
    "NoWorkersError",
    "Pool",
    "Process",
    "TimeoutError",
    "UnknownResult",
    "result",
]

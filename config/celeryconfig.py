"""The Celery settings that follow from farpool's settings (DESIGN §2)."""

from __future__ import annotations

from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings

SERIALIZER = "farpool-json"  # registered with kombu by tasks/encoding.py (tests check they agree)
# A host whose cable is pulled closes no socket: without these, a worker waits on a dead
# connection, silently, until the cable is back. A read waits at most SOCKET_TIMEOUT; kombu drops
# a BRPOP connection whose reply is HEALTH_CHECK_INTERVAL overdue (so a worker notices within
# about 1 + 2 × 2 = 5 s, logs "Connection to broker lost" and reconnects by itself); redis-py
# PINGs a connection idle for longer before using it.
SOCKET_TIMEOUT = 3.0
CONNECT_TIMEOUT = 3.0
HEALTH_CHECK_INTERVAL = 2
SENTINEL_TIMEOUT = 0.5


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration mapping for these settings."""
    # kombu's sweep for unacked messages runs every this many seconds: farpool's transport
    # (tasks/inflight.py) refreshes each consumer's liveness and returns what a gone consumer
    # held on the same timer, so it runs every second.
    sweep_interval = 1
    # Messages in kombu's own unacked hash (left by a worker of a farpool before issue 20, or
    # taken outside farpool's BLMOVE path) go back after the visibility timeout, looked for every
    # timeout/4 s (1-10 s): a last resort that a live worker's chunk never meets.
    restore_interval = max(1, min(10, settings.visibility_timeout // 4))
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": sweep_interval,
        "unacked_restore_throttle": restore_interval // sweep_interval,
        # One worker at a time sweeps kombu's hash, under a mutex that expires after this long
        # (300 s by default): a worker cut off mid-sweep must not hold redelivery up for long.
        "unacked_mutex_expire": restore_interval,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        # A message's body is farpool-JSON text: kombu's default base64 around it cost a third
        # more bytes through Redis and an encode and decode per message.
        "body_encoding": None,
        # A producer's batch of messages cut off by a broker restart waits this long for it
        # (tasks/publish_batch.py), as a producer waits for results (FARPOOL_BROKER_TIMEOUT).
        "publish_patience": settings.broker_timeout,
    }
    if settings.sentinel_master:
        transport_options["master_name"] = settings.sentinel_master
        # Every new connection asks the Sentinels in the order given: one on a dead host must
        # cost a second, not a full connect timeout, each time (kombu asks once per channel).
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "socket_timeout": SENTINEL_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),  # the next Sentinel is the retry
        }
        if settings.sentinel_password:
            sentinel_kwargs["password"] = settings.sentinel_password
        transport_options["sentinel_kwargs"] = sentinel_kwargs
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.backend_url,
        # tasks.control: farpool's remote-control commands, which only a worker needs to import
        "include": ["tasks.chunks", "tasks.control", "tasks.examples", *settings.include],
        # The mission: one prefork process per core, on every host.
        "worker_pool": "prefork",
        "worker_concurrency": settings.concurrency,
        # JSON only: a pickle payload from the broker or the backend is never loaded. farpool's
        # JSON (tasks/encoding.py) keeps tuples, sets and non-str dict keys; plain JSON from
        # other Celery clients is accepted too.
        "task_serializer": SERIALIZER,
        "result_serializer": SERIALIZER,
        "accept_content": [SERIALIZER, "json"],
        "result_accept_content": [SERIALIZER, "json"],
        # Ack after the chunk ran, and requeue it if its process died: a killed child loses nothing.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Keep running chunks through a broker blip: cancelling them (True) loses them, since
        # Celery fails to announce the cancel on the dead connection, then stores REVOKED and
        # acks. The price: a broker gone longer than the visibility timeout can have a chunk
        # run twice (its second result is ignored and expires).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Store a result through a broker/backend restart instead of failing the chunk:
        # connection errors are retried with backoff (up to 1 s apart) for about a minute.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "result_backend_max_sleep_between_retries_ms": 1000,
        # Chunks are already batches: reserving more lets one host hoard what others could run
        # (measured: 4 was no faster than 1 on the benchmark, 445 vs 411 tasks/s, burn 1.14x vs 1.15x).
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        # Task events only while a monitor watches (tasks/watch.py): Flower sees every chunk from
        # the moment it opens; nobody pays for them otherwise. Heartbeats are always on.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # Results of an abandoned map_async are removed by Redis itself after this long.
        "result_expires": settings.result_expires,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "redis_socket_timeout": SOCKET_TIMEOUT,
        "redis_socket_connect_timeout": CONNECT_TIMEOUT,
        "redis_socket_keepalive": True,
        # No redis-py health check on the results' connections: on a Sentinel pool, its PING
        # reconnects a pub/sub connection to the old master's address, for ever. The producer's
        # listener probes its own connection (producer/inflight/liveness.py).
        "task_default_queue": settings.queue,
        "broker_connection_retry_on_startup": True,
        # A send that meets a restarting broker retries for as long as a producer waits for one
        # (Celery's default gives up after 3 tries, under a second: a map raised ConnectionError).
        "task_publish_retry_policy": {
            "max_retries": settings.broker_timeout,
            "interval_start": 0,
            "interval_step": 0.25,
            "interval_max": 1,
        },
        # A worker cut off from the broker reconnects by itself, however long the cut lasts
        # (Celery gives up after 100 attempts, about 50 minutes, by default).
        "broker_connection_max_retries": None,
        "worker_consumer": "tasks.consumer:Consumer",
    }

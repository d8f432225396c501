"""The Celery settings that follow from farpool's settings (DESIGN §2)."""

from __future__ import annotations

from typing import Any

from config.settings import Settings

SERIALIZER = "farpool-json"  # registered with kombu by tasks/encoding.py (tests check they agree)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration mapping for these settings."""
    transport_options: dict[str, Any] = {
        # A chunk whose worker vanished without acking goes back on the queue after this
        # many seconds; it must exceed the longest chunk, or a chunk runs twice.
        "visibility_timeout": settings.visibility_timeout,
        # kombu sweeps for such chunks every interval × throttle seconds (10 × 10 by default,
        # whatever the timeout): sweep a few times per timeout instead. One ZRANGE a sweep.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    if settings.sentinel_master:
        transport_options["master_name"] = settings.sentinel_master
    if settings.sentinel_password:
        transport_options["sentinel_kwargs"] = {"password": settings.sentinel_password}
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.backend_url,
        "include": ["tasks.chunks", "tasks.examples", *settings.include],
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
        # Events on, so Flower sees every worker and every chunk from the moment it is sent.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Results of an abandoned map_async are removed by Redis itself after this long.
        "result_expires": settings.result_expires,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "task_default_queue": settings.queue,
        "broker_connection_retry_on_startup": True,
    }

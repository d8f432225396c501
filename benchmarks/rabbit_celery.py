"""Plain Celery on RabbitMQ, for `python -m benchmarks.consume`: the floor farpool is measured
against. Its worker is `celery -A benchmarks.rabbit_celery -b amqp://... --result-backend ...
worker`, with the settings farpool's workers have (prefork, acks late, prefetch 1, events off)."""

from __future__ import annotations

from celery import Celery

app = Celery("rabbit_bench")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=False,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="rabbit_bench.square")
def square(x: int) -> int:
    return x * x

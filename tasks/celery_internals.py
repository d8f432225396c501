"""Every private or undocumented Celery and kombu API farpool overrides, calls or reads, and why.

farpool changes Celery where its public API has no hook: how a result is stored (tasks/backend.py),
how kombu's Redis channel makes clients and records what a worker takes (tasks/transport.py), the
worker's heartbeat (tasks/consumer.py). Each such dependency is one row of INTERNALS, checked by
tests/test_celery_internals.py against the installed Celery and kombu: a row that no longer holds
fails there, naming the API and what farpool needs of it, before anything misbehaves at run time.
pyproject.toml pins the versions they were checked against (CHECKED); a new Celery or kombu
release is taken by running that test (`pytest -m unit`), then widening the pin.

Imports nothing: the test resolves each dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass

# The releases these rows were checked against: pyproject.toml's pins say the same (a test checks).
CHECKED = {"celery": ("5.7", "5.8"), "kombu": ("5.7", "5.8")}  # [lowest, below)


@dataclass(frozen=True)
class Internal:
    """`path`: a dotted path to a module attribute, a class attribute or a method.

    `parameters`: a callable's leading parameters, `self` left out (None: not checked);
    `holds`: text the object's source holds (an attribute set in `__init__`, a key's name), or an
    item the object (a list, a string) holds; `kind`: override (farpool's subclass replaces it),
    call, read, or replace.
    """

    path: str
    kind: str
    used_in: str
    why: str
    parameters: tuple[str, ...] | None = None
    holds: str | None = None


BACKEND = "celery.backends.redis.RedisBackend"
CHANNEL = "kombu.transport.redis.Channel"

INTERNALS = (
    # -- the result backend (tasks/backend.py) -----------------------------------------------------
    Internal(
        f"{BACKEND}._set",
        "override",
        "tasks/backend.py",
        "every result store goes through farpool's store script (discarded and twin results dropped)",
        ("key", "value", "expires"),
    ),
    Internal(
        "celery.backends.base.BaseKeyValueStoreBackend._store_result",
        "override",
        "tasks/backend.py",
        "Celery's store less its read before the write: the store script keeps a stored success",
        ("task_id", "result", "state", "traceback", "request"),
    ),
    Internal(
        "celery.backends.base.Backend._get_result_meta",
        "call",
        "tasks/backend.py",
        "the stored meta built as Celery builds it (farpool's _store_result)",
        ("result", "state", "traceback", "request"),
    ),
    Internal(
        f"{BACKEND}._set_with_state",
        "call",
        "tasks/backend.py",
        "the store with Celery's retry policy (farpool's _store_result)",
        ("key", "value", "state"),
    ),
    Internal(
        f"{BACKEND}._transport_options",
        "read",
        "tasks/backend.py",
        "the visibility timeout, for how long a twin mark is kept",
    ),
    Internal(
        f"{BACKEND}.__init__",
        "read",
        "tasks/backend.py",
        "connparams: farpool's no-retry Retry goes into the result client's connection parameters",
        holds="self.connparams",
    ),
    Internal(
        "celery.backends.redis.ResultConsumer.__init__",
        "read",
        "tasks/backend.py",
        "result_consumer.subscribed_to, cleared when the server has gone (forget_subscriptions)",
        holds="self.subscribed_to",
    ),
    Internal(
        f"{BACKEND}.on_task_call",
        "override",
        "tasks/backend.py",
        "no per-message result subscription for farpool's own sends (one listener collects)",
        ("producer", "task_id"),
    ),
    Internal(
        "celery.backends.asynchronous.AsyncBackendMixin.add_pending_result",
        "override",
        "tasks/backend.py",
        "a GroupResult does not subscribe each member of farpool's sends",
        ("result", "weak", "start_drainer"),
    ),
    Internal(
        f"{BACKEND}.on_chord_part_return",
        "override",
        "tasks/backend.py",
        "a failed or abandoned map_async chord's saved results are deleted",
        ("request", "state", "result"),
    ),
    Internal(
        f"{BACKEND}.on_chord_part_return",
        "read",
        "tasks/backend.py",
        "a chord's keys are its group key with .c .j .t .s .d (CHORD_SUFFIXES), deleted by farpool",
        holds="'.j'",
    ),
    # -- the broker transport (tasks/transport.py, producer/inflight/lost.py) -----------------------
    Internal(
        f"{CHANNEL}._create_client",
        "override",
        "tasks/transport.py",
        "one redis-py client per channel instead of one per publish (18 % of a worker's main process)",
        ("asynchronous",),
    ),
    Internal(
        f"{CHANNEL}._connparams",
        "override",
        "tasks/transport.py",
        "farpool's no-retry Retry in the broker's connection parameters",
        ("asynchronous",),
    ),
    Internal(
        f"{CHANNEL}._do_restore_message",
        "call",
        "tasks/transport.py",
        "a message taken but not recorded as unacked (the broker went away between) is queued again",
        ("payload", "exchange", "routing_key", "pipe"),
    ),
    Internal(
        f"{CHANNEL}.conn_or_acquire",
        "call",
        "tasks/transport.py",
        "the pipeline for that restore",
        ("client",),
    ),
    Internal(
        "kombu.transport.redis._batch_publish_retry_safe",
        "call",
        "tasks/transport.py",
        "kombu's own check of batched publishing, kept for the rest of the connection's options",
        ("connection_kwargs",),
    ),
    Internal(
        f"{CHANNEL}.supports_batch_publish",
        "override",
        "tasks/transport.py",
        "batched publishing allowed with farpool's Retry, which retries nothing",
    ),
    Internal(
        "kombu.transport.redis.QoS.append",
        "override",
        "tasks/transport.py",
        "what a worker took when the unacked record failed is remembered, not lost",
        ("message", "delivery_tag"),
    ),
    Internal(
        "kombu.transport.virtual.base.Message.__init__",
        "read",
        "tasks/transport.py",
        "message._raw: the payload put back on the queue",
        holds="self._raw",
    ),
    Internal(
        "kombu.transport.redis.Channel.unacked_key",
        "read",
        "producer/inflight/lost.py",
        "kombu's unacked hash is named `unacked` (tasks/wire.py's UNACKED) unless configured",
        holds="unacked",
    ),
    Internal(
        "kombu.messaging.Producer.batch",
        "call",
        "producer/sending/publishing.py",
        "a map's messages published in pipelined batches",
        ("max_size",),
    ),
    # -- the worker (tasks/consumer.py, tasks/control.py, tasks/presence.py, tasks/watch.py) --------
    Internal(
        "celery.worker.heartbeat.Heart._send",
        "override",
        "tasks/consumer.py",
        "a heartbeat sent once, so that a lost broker is noticed instead of retried for ever",
        ("event", "retry"),
    ),
    Internal(
        "celery.events.dispatcher.EventDispatcher.__init__",
        "read",
        "tasks/consumer.py",
        "eventer.buffer_while_offline, off while a heartbeat is sent",
        holds="self.buffer_while_offline",
    ),
    Internal(
        "celery.worker.consumer.consumer.Consumer.Blueprint.default_steps",
        "replace",
        "tasks/consumer.py",
        "celery.worker.consumer.heart:Heart replaced by farpool's Heart",
        holds="celery.worker.consumer.heart:Heart",
    ),
    Internal(
        "celery.events.dispatcher.EventDispatcher.__init__",
        "read",
        "tasks/watch.py",
        "dispatcher.groups: task events turned on and off while a monitor watches",
        holds="self.groups",
    ),
    Internal(
        "celery.events.receiver.EventReceiver.process",
        "override",
        "tasks/watch.py",
        "an event receiver marks the cluster as watched",
        ("type", "event"),
    ),
    Internal("celery.app.events.Events.receiver_cls", "override", "tasks/watch.py", "farpool's receiver"),
    Internal(
        "celery.worker.state.active_requests",
        "read",
        "tasks/control.py, tasks/presence.py",
        "what a worker runs now: farpool_revoke terminates it, the announcement names it",
    ),
    Internal("celery.worker.state.requests", "read", "tasks/control.py", "a revoked task's running request"),
    Internal("celery.worker.state.revoked", "read", "tasks/control.py", "farpool_revoke's revoked ids"),
    Internal(
        "celery.worker.request.Request.terminate",
        "call",
        "tasks/control.py",
        "farpool_revoke(terminate=True) stops a running task",
        ("pool", "signal"),
    ),
    Internal(
        "celery.worker.control.Panel._register",
        "call",
        "tasks/control.py",
        "control_command(name=...): the commands registered under tasks/wire.py's names",
        ("name",),
    ),
    # -- the app and the canvas (tasks/app.py, tasks/references.py, producer/sending/calls.py) ------
    Internal(
        "celery.app.base.Celery._load_config",
        "override",
        "tasks/app.py",
        "the settings are read (and checked) before Celery marks the app configured",
        (),
    ),
    Internal(
        "celery.app.base.Celery.__init__",
        "read",
        "tasks/app.py",
        "_config_source: farpool's configuration is only applied when nobody gave one",
        holds="self._config_source",
    ),
    Internal(
        "celery.app.task.Context.__init__",
        "read",
        "tasks/payload.py",
        "a message's own headers (tasks/wire.py's SHARED_MEMORY_HEADER) read as task.request attributes",
        holds="self.update(",
    ),
    Internal(
        "celery.worker.request.Request.argsrepr",
        "read",
        "tasks/presence.py",
        "farpool's label of a running chunk, for what the announcement says each process runs",
    ),
    Internal(
        "celery.bin.base.CLIContext.__init__",
        "call",
        "tasks/local_worker.py",
        "Celery's `worker` command run under a lighter root group holding farpool's app",
        ("app", "no_color", "workdir"),
    ),
    Internal("celery.bin.worker.worker", "call", "tasks/local_worker.py", "Celery's own `worker` command"),
    Internal(
        "celery.local.Proxy._get_current_object",
        "call",
        "tasks/references.py",
        "the task behind a @shared_task found by reference",
        (),
    ),
    # -- farpool's consume path (tasks/transport.py, tasks/inflight.py, tasks/publish_batch.py) ---
    Internal(
        f"{CHANNEL}._brpop_start",
        "override",
        "tasks/transport.py",
        "the take is a BLMOVE into the consumer's in-flight list, sent with the acks due",
        ("timeout",),
    ),
    Internal(
        f"{CHANNEL}._brpop_read",
        "override",
        "tasks/transport.py",
        "reads the acks' replies, then the BLMOVE's message, and delivers it",
        holds="_in_poll",
    ),
    Internal(
        f"{CHANNEL}.__init__",
        "read",
        "tasks/transport.py",
        "the fair cycle over the queues (BLMOVE takes from one list at a time)",
        holds="_queue_cycle",
    ),
    Internal(
        f"{CHANNEL}._flush_brpop_reauth",
        "call",
        "tasks/transport.py",
        "kombu's re-authentication after a take, kept after farpool's take",
    ),
    Internal(
        f"{CHANNEL}._lookup",
        "call",
        "tasks/inflight.py",
        "the queue a held message goes back to, from its exchange and routing key",
        ("exchange", "routing_key"),
    ),
    Internal(
        f"{CHANNEL}._q_for_pri",
        "call",
        "tasks/inflight.py",
        "a queue's Redis list name (farpool sends no priorities)",
        ("queue", "pri"),
    ),
    Internal(
        f"{CHANNEL}.from_transport_options",
        "read",
        "tasks/transport.py",
        "the transport options kombu copies onto a channel: farpool adds `publish_patience`",
        holds="visibility_timeout",
    ),
    Internal(
        f"{CHANNEL}.create_publish_batch",
        "override",
        "tasks/transport.py",
        "a producer's batch that waits out a broker restart (tasks/publish_batch.py)",
        ("max_size",),
    ),
    Internal(
        "kombu.transport.redis.PublishBatch.flush",
        "override",
        "tasks/publish_batch.py",
        "a failed flush pushes what is nowhere once the broker answers, instead of raising",
        (),
    ),
    Internal(
        "kombu.transport.redis.PublishBatch.add",
        "override",
        "tasks/publish_batch.py",
        "each LPUSH of the batch is kept for a retry",
        ("name",),
    ),
    Internal(
        "kombu.transport.redis.PublishBatch.__init__",
        "read",
        "tasks/publish_batch.py",
        "a batch whose flush failed is refused until `_failed` is cleared",
        ("channel", "max_size"),
        holds="_failed",
    ),
    Internal(
        "kombu.transport.redis.QoS.ack",
        "override",
        "tasks/transport.py",
        "a held message's ack is one LREM, sent with the next take",
        ("delivery_tag",),
    ),
    Internal(
        "kombu.transport.redis.QoS.reject",
        "override",
        "tasks/transport.py",
        "a held message's requeue is one script (tasks/lua/inflight_return.lua)",
        ("delivery_tag", "requeue"),
    ),
    Internal(
        "kombu.transport.redis.QoS.restore_by_tag",
        "override",
        "tasks/transport.py",
        "a held message goes back by the in-flight script, not kombu's unacked hash",
        ("tag", "client", "leftmost"),
    ),
    Internal(
        "kombu.transport.redis.QoS.restore_visible",
        "override",
        "tasks/transport.py",
        "kombu's sweep timer also refreshes the consumer's liveness and returns gone consumers' messages",
        ("start", "num", "interval"),
    ),
    Internal(
        "kombu.transport.virtual.base.Transport._deliver",
        "call",
        "tasks/transport.py",
        "a message taken by BLMOVE handed to its consumer's callback",
        ("message", "queue"),
    ),
    Internal(
        "celery.app.amqp.AMQP.as_task_v2",
        "read",
        "producer/sending/calls.py",
        "a map_async's chord sent as its header group, the body in each chunk's `chord` option",
        ("task_id", "name", "args", "kwargs", "countdown", "eta", "group_id", "group_index", "expires"),
        holds="chord",
    ),
)

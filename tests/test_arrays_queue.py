"""Arrays through the cluster's Queue, as through multiprocessing.Queue (issue 19)."""

from __future__ import annotations

import uuid

import numpy as np
import userarrays
from conftest import Cluster

from producer import Pool, Queue


def test_arrays_put_by_tasks_are_got_by_the_producer_and_leave_nothing(cluster: Cluster, pool: Pool) -> None:
    name = f"arrays-{uuid.uuid4().hex[:8]}"
    results = Queue(name, app=cluster.app)
    rows = [np.arange(5.0) * row for row in range(4)]
    assert pool.starmap(userarrays.put_on_queue, [(name, row) for row in rows]) == [5] * 4
    got = sorted((results.get(timeout=30) for _ in rows), key=lambda item: item["sum"])
    for item, row in zip(got, rows, strict=True):
        assert item["array"].dtype == row.dtype and (item["array"] == row).all()
    client = cluster.app.backend.client
    assert not client.exists(results.key(":data"))
    assert not list(client.scan_iter(match=b"farpool-data-item-*"))
    results.delete()


def test_a_reliable_queue_keeps_an_arrays_bytes_until_task_done(cluster: Cluster) -> None:
    name = f"reliable-{uuid.uuid4().hex[:8]}"
    client = cluster.app.backend.client
    items = Queue(name, reliable=True, app=cluster.app)
    items.put((np.ones((2, 2), dtype=np.float32), "label"))
    array, label = items.get(timeout=5)
    assert label == "label" and array.dtype == np.float32 and array.shape == (2, 2)
    assert client.scard(items.key(":data")) == 1, "kept until task_done: a lease may requeue it"
    items.task_done()
    assert not client.exists(items.key(":data"))
    items.put(np.zeros(3))
    items.delete()
    assert not list(client.scan_iter(match=b"farpool-data-item-*"))

"""multiprocessing.Pool's corner cases, each beside the stdlib's own behaviour."""

from __future__ import annotations

import gc
import multiprocessing
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from multiprocessing.pool import MaybeEncodingError
from pathlib import Path
from typing import Any

import pytest
import usertasks
from conftest import Cluster
from helpers import fresh_machine_env

from producer import Pool


@pytest.fixture(scope="module")
def stdlib_pool() -> Iterator[Any]:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        yield pool


@pytest.mark.parametrize("ours", [False, True], ids=["stdlib", "farpool"])
def test_a_result_that_cannot_travel_is_a_maybe_encoding_error(
    ours: bool, module_pool: Pool, stdlib_pool: Any
) -> None:
    pool = module_pool if ours else stdlib_pool
    with pytest.raises(MaybeEncodingError):
        pool.map(usertasks.returns_a_function, [1, 2])
    with pytest.raises(MaybeEncodingError):
        pool.apply_async(usertasks.returns_a_function, (1,)).get(60)
    received: list[BaseException] = []
    done = threading.Event()

    def on_error(error: BaseException) -> None:
        received.append(error)
        done.set()

    pool.map_async(usertasks.returns_a_function, [1], error_callback=on_error)
    assert done.wait(60)
    assert isinstance(received[0], MaybeEncodingError)


def test_farpools_encoding_error_is_also_a_type_error(module_pool: Pool) -> None:
    with pytest.raises(TypeError, match="returned function for item 0, which JSON cannot carry"):
        module_pool.map(usertasks.returns_a_function, [1])


@pytest.mark.parametrize("ours", [False, True], ids=["stdlib", "farpool"])
def test_join_after_a_failed_map_waits_for_its_chunks_still_running(
    ours: bool, cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "ran to the end"
    pool = cluster.pool() if ours else multiprocessing.get_context("forkserver").Pool(2)
    with pytest.raises(ValueError, match="item 0 fails"):
        pool.starmap(usertasks.fail_or_mark, [(0, str(marker)), (1, str(marker))], chunksize=1)
    pool.close()
    pool.join()
    assert marker.read_text() == "1"


@pytest.mark.parametrize("ours", [False, True], ids=["stdlib", "farpool"])
def test_a_running_pool_garbage_collected_warns_and_is_released(ours: bool, cluster: Cluster) -> None:
    pool = cluster.pool() if ours else multiprocessing.get_context("forkserver").Pool(1)
    listener = pool._ledger._listener.thread if ours else None
    with warnings.catch_warnings():  # what earlier tests left for the collector is not this test's
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    with pytest.warns(ResourceWarning, match="unclosed running"):
        del pool
        gc.collect()
    if listener is not None:
        listener.join(10)
        assert not listener.is_alive()


def test_a_farpool_pool_after_a_fork_context_pool_finds_its_workers(cluster: Cluster) -> None:
    with multiprocessing.get_context("fork").Pool(2) as stdlib:
        assert stdlib.map(usertasks.plain_cube, range(4)) == [0, 1, 8, 27]
    with cluster.pool(start_local=False) as pool:
        assert pool.map(usertasks.plain_cube, range(4)) == [0, 1, 8, 27]


DROPPED_IMAP = """\
from producer import Pool
from tasks.examples import nap


def start():
    pool = Pool(1)
    iterator = pool.imap(nap, [0.01] + [2.0] * 8, chunksize=1)
    print(next(iterator), flush=True)
    pool._local.stop()  # the cluster is gone; the pool and the iterator are not
    return pool, iterator


pool, iterator = start()
"""


@pytest.mark.integration
def test_an_imap_iterator_left_behind_by_a_stopped_cluster_does_not_hold_the_exit(tmp_path: Path) -> None:
    script = tmp_path / "dropped.py"
    script.write_text(DROPPED_IMAP)
    env = fresh_machine_env(str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert (done.returncode, done.stdout) == (0, "0.01\n"), done.stderr
    assert "Traceback" not in done.stderr

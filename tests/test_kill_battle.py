"""The kill battle of `make stress`, shorter: one-item tasks while worker main processes, prefork
children and the broker (AOF, `appendfsync always`) are SIGKILLed at random instants, default
settings. farpool's consume path loses nothing and delivers every result once; the same battle
on Celery's stock Redis transport runs beside it and its losses are printed (kombu loses what a
killed worker held until the visibility timeout, an hour, and a take cut by a broker kill)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
BATTLE = [
    *("--paths", "farpool,kombu", "--seconds", "20", "--drain", "30", "--chunksize", "1"),
    *("--items", "30", "--broker-kills", "0.25", "--fault-every", "2"),
]


def test_a_kill_battle_loses_nothing_on_farpools_path() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stress", *BATTLE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout)  # kombu's losses beside farpool's, in the test's report
    side_by_side = done.stdout.split("side by side", 1)[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "farpool  results lost 0, duplicates 0, maps failed or unfinished 0 of" in side_by_side
    assert "kombu    results lost" in side_by_side

"""The benchmark harness end to end at toy sizes: it runs, and it writes its JSON and chart.

No timing assertions (DESIGN §6): machines are noisy, the benchmark only reports.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

# `benchmarks` is not an installed package: it is importable from the repository's root, which
# `python -m pytest` (make test) puts on sys.path and a bare `pytest` does not.
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402

EXPECTED_FIGURES = {
    "pool_ready",
    "cli_apply",
    "seed_script",
    "map_async_send",
    "map_async_total",
    "terminate_clear",
    "map_square",
    "map_burn",
    "map_burn_efficiency",
    "imap_tiny",
    "apply_p50",
    "apply_p99",
    "map_chunksize_1",
    "stream_peak_rss",
    "stream_rate",
    "data_total",
    "data_double",
    "data_put",
    "data_put_broker",
}


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_every_workload_runs_at_tiny_sizes_and_the_report_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--tiny", "--output", str(tmp_path)]) == 0

    table = capsys.readouterr().out
    assert "farpool" in table and "multiprocessing" in table and "naive celery" in table

    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu_model"]
    assert report["machine"]["python"]
    assert report["run"]["workloads"] == list(WORKLOADS)
    figures = {figure["key"]: figure for figure in report["figures"]}
    assert set(figures) == EXPECTED_FIGURES
    for key, figure in figures.items():
        measured = [figure[name] for name in ("farpool", "multiprocessing", "celery")]
        assert figure["farpool"] is not None, key
        for value in measured:
            assert value is None or (isinstance(value, int | float) and math.isfinite(value) and value > 0), (
                key,
                measured,
            )
        assert figure["ratio"] is None or figure["ratio"] > 0
        assert (figure["met"] is None) == (figure["goal"] is None), key

    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_workload_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "map_square,nope"])
    assert exit_info.value.code == 2
    assert "unknown workload nope" in capsys.readouterr().err

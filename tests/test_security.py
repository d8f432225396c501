"""Security: JSON only end to end, passwords never shown, TLS settings kept, Flower on loopback.

The pickle *message* pushed onto the queue is in tests/test_bad_input.py; here the result side
(what the producer reads back) and the settings.
"""

from __future__ import annotations

import json
import os
import pickle
import ssl
import uuid
from pathlib import Path

import pytest
from celery.exceptions import SecurityError
from conftest import Cluster
from faults_support import Unpickles, fault_cluster
from helpers import run_cli

import tasks
from config import SettingsError, celery_config, load_settings
from producer import Pool
from producer.local.cluster import flower_command, flower_env, worker_command
from tasks import create_app

JSON_ONLY = {  # farpool's JSON (tasks/encoding.py) and plain JSON, never pickle
    "task_serializer": "farpool-json",
    "result_serializer": "farpool-json",
    "accept_content": ["farpool-json", "json"],
    "result_accept_content": ["farpool-json", "json"],
}


# -- JSON only ----------------------------------------------------------------------------------


def test_the_app_accepts_json_only() -> None:
    own = create_app(load_settings(broker_url="redis://127.0.0.1:1/0"))
    try:
        for app in (tasks.app, own):
            assert {name: app.conf[name] for name in JSON_ONLY} == JSON_ONLY
            assert app.backend.accept == {"application/json", "application/x-farpool-json"}
    finally:
        own.close()


def test_the_running_worker_accepts_json_only(cluster: Cluster) -> None:
    replies = cluster.app.control.inspect(timeout=5, limit=1).conf() or {}
    assert replies, "no worker answered"
    for conf in replies.values():
        assert {name: conf.get(name) for name in JSON_ONLY} == JSON_ONLY


@pytest.mark.parametrize("when", ["stored-before-watching", "published-while-watching"])
def test_a_pickle_payload_in_a_watched_result_key_is_an_error_never_unpickled(
    cluster: Cluster, pool: Pool, tmp_path: Path, when: str
) -> None:
    unpickled = tmp_path / "unpickled"
    meta = {"status": "SUCCESS", "result": Unpickles(str(unpickled)), "traceback": None, "task_id": "x"}
    payload = pickle.dumps(meta)
    arrive_with_error(cluster, pool, payload, when)
    assert not unpickled.exists(), "the producer unpickled a result"


def test_a_json_result_naming_a_non_exception_is_refused_not_called(
    cluster: Cluster, pool: Pool, tmp_path: Path
) -> None:
    """Celery rebuilds a stored exception from exc_module/exc_type: os.system must not be one."""
    marker = tmp_path / "ran"
    meta = {
        "status": "FAILURE",
        "result": {"exc_type": "system", "exc_module": "os", "exc_message": [f"touch {marker}"]},
        "traceback": None,
        "task_id": "x",
    }
    error = arrive_with_error(cluster, pool, json.dumps(meta).encode(), "published-while-watching")
    assert isinstance(error, SecurityError), error
    assert not marker.exists(), "a stored result ran a command"


def arrive_with_error(cluster: Cluster, pool: Pool, payload: bytes, when: str) -> BaseException:
    """Write `payload` into the result key of a task the pool watches; the error get() raises."""
    task_id = str(uuid.uuid4())
    client = cluster.app.backend.client
    key = cluster.app.backend.get_key_for_task(task_id)
    result = None
    try:
        if when == "stored-before-watching":
            client.set(key, payload, ex=60)
            result = pool.attach(task_id)
        else:  # a task in flight, whose key a bad payload reaches first
            result = pool.apply_async("tasks.examples.nap", (30,))
            key = cluster.app.backend.get_key_for_task(result.id)
            client.set(key, payload, ex=60)
            client.publish(key, payload)
        with pytest.raises(Exception) as caught:
            result.get(30)
        assert not isinstance(caught.value, TimeoutError), "the bad payload was never answered"
        return caught.value
    finally:
        client.delete(key)
        if result is not None:  # the nap still runs: stop it, drop its real result
            pool._ledger.abandon([result.id], terminate=True)


# -- passwords ----------------------------------------------------------------------------------


def test_a_password_protected_broker_works_and_its_password_never_shows(tmp_path: Path) -> None:
    password = "pw-" + uuid.uuid4().hex
    with fault_cluster(tmp_path, password=password) as cluster:
        url = cluster.settings.broker_url
        assert password in url
        masked = url.replace(password, "***")
        shown: list[str] = []

        with Pool(app=cluster.app) as pool:
            assert pool.map("tasks.examples.square", range(20), chunksize=3) == [x * x for x in range(20)]

        listing = run_cli("cluster", env=cluster.env, timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert f"broker {masked}" in listing.stdout
        shown += [listing.stdout, listing.stderr]

        applied = run_cli("apply", "tasks.examples.square", "7", env=cluster.env, timeout=60)
        assert applied.returncode == 0 and applied.stdout.strip() == "49", applied.stderr
        shown += [applied.stdout, applied.stderr]

        wrong = {**cluster.env, "FARPOOL_BROKER_URL": url.replace(password, "wrong-" + password[:6])}
        del wrong["FARPOOL_RESULT_BACKEND"]
        refused = run_cli("map", "tasks.examples.square", "1", "2", env=wrong, timeout=60)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused the password" in lines[0], refused.stderr
        assert "127.0.0.1" in lines[0] and ":***@" in lines[0], lines[0]
        shown += [refused.stdout, refused.stderr]

        replies = cluster.app.control.inspect(timeout=5, limit=1).conf() or {}
        assert replies
        shown.append(json.dumps(replies, default=str))

        command_lines = [
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            for worker in cluster.workers
            for pid in (cluster.main_pid(worker), *cluster.pool_children(worker))
        ]
        shown += command_lines
        log = cluster.log_text()
        banner = [line for line in log.splitlines() if ".> transport:" in line or ".> results:" in line]
        assert len(banner) >= 2, "the worker banner is not in the log"
        assert all(":***@" in line for line in banner), banner
        shown.append(log)

    leaks = [text for text in shown if password in text]
    assert not leaks, f"the password shows in: {leaks[0][:300]!r}"


def test_the_worker_command_carries_no_url() -> None:
    settings = load_settings(broker_url="redis://:secret-pw@127.0.0.1:1/0")
    assert not any("secret-pw" in part for part in worker_command(settings, "n@h"))
    assert not any("secret-pw" in part for part in flower_command(settings))


# -- TLS ----------------------------------------------------------------------------------------


def test_rediss_settings_pass_through_to_celery() -> None:
    url = "rediss://:pw@cache.example:6380/0?ssl_cert_reqs=required"
    settings = load_settings(broker_url=url)
    conf = celery_config(settings)
    assert conf["broker_url"] == url
    assert conf["result_backend"] == "rediss://:pw@cache.example:6380/1?ssl_cert_reqs=required"
    app = create_app(settings)
    try:
        assert app.conf.broker_url == url
        connection = app.connection_for_write()
        assert connection.transport_cls == "tasks.transport:Transport"  # farpool's, for rediss:// too
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        params = app.backend.connparams
        assert params["connection_class"].__name__ == "SSLConnection"
        assert params["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        assert (params["host"], params["port"], params["db"]) == ("cache.example", 6380, 1)
    finally:
        app.close()


def test_rediss_without_ssl_cert_reqs_verifies_certificates_or_is_a_settings_error() -> None:
    """kombu silently turns certificate checks off for such a URL (Celery's backend refuses it)."""
    try:
        settings = load_settings(broker_url="rediss://:pw@cache.example:6380/0")
    except SettingsError as error:
        assert "ssl_cert_reqs" in str(error)
        return
    app = create_app(settings)
    try:
        assert app.connection_for_write().ssl.get("ssl_cert_reqs") == ssl.CERT_REQUIRED
        assert app.backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    finally:
        app.close()


# -- Flower -------------------------------------------------------------------------------------


def test_flower_binds_to_loopback_and_takes_basic_auth_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FARPOOL_FLOWER"):
            monkeypatch.delenv(name)
    defaults = load_settings()
    command = flower_command(defaults)
    assert "--address=127.0.0.1" in command
    assert not any(part.startswith("--basic-auth") for part in command)
    assert flower_env(defaults) == {}

    secured = load_settings(flower_basic_auth="ops:s3cret", flower_address="0.0.0.0")
    assert flower_env(secured) == {"FLOWER_BASIC_AUTH": "ops:s3cret"}
    assert "--address=0.0.0.0" in flower_command(secured)
    assert not any("s3cret" in part for part in flower_command(secured)), "the password would show in ps"

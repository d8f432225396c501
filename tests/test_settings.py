"""Settings: defaults, derivations and a one-line error naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from config import SettingsError, celery_config, load_settings, mask_url, settings_env

pytestmark = pytest.mark.unit  # pure logic: no server, no worker


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FARPOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(os.path.dirname(__file__))  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.result_backend == "redis://127.0.0.1:6379/1"
    assert settings.concurrency == os.cpu_count()
    assert settings.embedded_broker == "auto"
    assert settings.include == ()


def test_data_goes_to_the_users_data_folder_unless_farpool_data_dir_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().data_dir == str(tmp_path / "xdg" / "farpool")
    assert not (tmp_path / "xdg").exists()  # reading the settings creates nothing
    monkeypatch.setenv("FARPOOL_DATA_DIR", str(tmp_path / "mine"))
    assert load_settings().data_dir == str(tmp_path / "mine")


def test_backend_defaults_to_db_1_of_the_brokers_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARPOOL_BROKER_URL", "rediss://:pw@cache.example:6380/4?ssl_cert_reqs=required")
    assert load_settings().result_backend == "rediss://:pw@cache.example:6380/1?ssl_cert_reqs=required"


def test_include_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARPOOL_INCLUDE", "mytasks, other.tasks ,")
    assert load_settings().include == ("mytasks", "other.tasks")
    assert celery_config(load_settings())["include"][-2:] == ["mytasks", "other.tasks"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FARPOOL_BROKER_URL", "amqp://guest@localhost//", "unsupported scheme amqp://"),
        ("FARPOOL_BROKER_URL", "http://example.com", "unsupported scheme http://"),
        ("FARPOOL_RESULT_BACKEND", "db+sqlite:///x.db", "unsupported scheme db+sqlite://"),
        ("FARPOOL_BROKER_URL", "rediss://cache.example:6380/0", "needs ?ssl_cert_reqs=required"),
        ("FARPOOL_CONCURRENCY", "-1", "greater than or equal to 1"),
        ("FARPOOL_CONCURRENCY", "many", "a whole number of processes, or `physical` or `logical`"),
        ("FARPOOL_CONCURRENCY", "2.5", "a whole number of processes, or `physical` or `logical`"),
        ("FARPOOL_EMBEDDED_BROKER", "sometimes", "'auto' or 'never'"),
        ("FARPOOL_VISIBILITY_TIMEOUT", "0", "greater than or equal to 1"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("value", "logical"), [("physical", False), ("logical", True), (" Physical ", 0)])
def test_concurrency_physical_or_logical_is_this_hosts_count(
    monkeypatch: pytest.MonkeyPatch, value: str, logical: bool
) -> None:
    monkeypatch.setenv("FARPOOL_CONCURRENCY", value)
    expected = psutil.cpu_count(logical=logical) or os.cpu_count()
    assert load_settings().concurrency == expected
    assert celery_config(load_settings())["worker_concurrency"] == expected


def test_programs_are_comma_separated_and_none_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().programs == ()
    monkeypatch.setenv("FARPOOL_PROGRAMS", "echo, /usr/bin/sleep ,")
    assert load_settings().programs == ("echo", "/usr/bin/sleep")
    assert settings_env(load_settings())["FARPOOL_PROGRAMS"] == "echo,/usr/bin/sleep"


def test_sentinel_needs_the_master_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARPOOL_BROKER_URL", "sentinel://:pw@s1:26379;sentinel://:pw@s2:26379")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == ("FARPOOL_SENTINEL_MASTER: required when FARPOOL_BROKER_URL is sentinel://")
    monkeypatch.setenv("FARPOOL_SENTINEL_MASTER", "mymaster")
    settings = load_settings()
    assert settings.result_backend == "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26379/1"
    options = celery_config(settings)["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    assert celery_config(settings)["result_backend_transport_options"] == options


def test_bad_url_error_masks_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARPOOL_BROKER_URL", "amqp://user:s3cret@host/")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:s3cret@host/2", "rediss://user:***@host/2"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        (
            "sentinel://:a@h1:26379;sentinel://:b@h2:26379",
            "sentinel://:***@h1:26379;sentinel://:***@h2:26379",
        ),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_celery_config_follows_the_mission() -> None:
    conf = celery_config(load_settings(concurrency=3, visibility_timeout=42))
    assert conf["worker_pool"] == "prefork"
    assert conf["worker_concurrency"] == 3
    assert conf["accept_content"] == ["farpool-json", "json"]
    assert conf["result_accept_content"] == ["farpool-json", "json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "farpool-json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    # task events only while a monitor watches (tasks/watch.py)
    assert not conf["worker_send_task_events"] and not conf["task_send_sent_event"]
    assert 0 < conf["result_expires"] < 10**7
    assert conf["broker_transport_options"]["visibility_timeout"] == 42


def test_settings_env_round_trips() -> None:
    settings = load_settings(concurrency=3, include=("a", "b"), queue="q1")
    for name, value in settings_env(settings).items():
        os.environ[name] = value
    try:
        assert load_settings() == settings
    finally:
        for name in settings_env(settings):
            del os.environ[name]


@pytest.mark.parametrize("visibility_timeout", [1, 6, 60, 3600])
def test_redelivery_is_never_held_up_longer_than_a_sweep(visibility_timeout: int) -> None:
    """kombu's redelivery mutex (300 s by default) expires within one sweep, itself well within
    the visibility timeout: a worker cut off while sweeping holds nobody up for long."""
    options = celery_config(load_settings(visibility_timeout=visibility_timeout))["broker_transport_options"]
    sweep = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
    assert options["unacked_mutex_expire"] <= sweep <= max(1, visibility_timeout // 2)
    assert options["socket_timeout"] and options["health_check_interval"]

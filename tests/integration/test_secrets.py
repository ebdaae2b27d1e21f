"""End to end: a remote that repeats the channel's secret in its answer, in whatever spelling,
does not put it anywhere notifierd shows or keeps it: `notifierctl status`, `jobs --json`,
`/api/jobs/{id}`, stderr, the log file and the database file's bytes."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests
import yaml

from tests.fakes.smsru import FakeSmsRu
from tests.fakes.smtp import FakeSmtp
from tests.fakes.tls import Certificate
from tests.fakes.twilio import DEFAULT_SID, FakeTwilio, twilio_error
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

PHONE = "+79251234567"
ADDRESS = "ops@example.org"
SMTP_USER = "notifier@example.org"
# Characters that URL-encoding, JSON and base64 all spell differently.
SECRET = 'pä/ss+w=rd&"q"\\1'
SMSRU_SECRET = "7B3A4C1D-0000/1111+2222=ä&3C4D"
TWILIO_SECRET = "tw-token/x+y=z"


def spellings(secret: str, user: str) -> dict[str, bytes]:
    """The ways a remote may repeat the secret, written out independently of notifierd."""
    forms = {
        "plain": secret,
        "url": quote(secret, safe=""),
        "url+": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 user:secret": base64.b64encode(f"{user}:{secret}".encode()).decode(),
        "base64 \\0user\\0secret": base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),
    }
    return {name: form.encode() for name, form in forms.items()}


def assert_nowhere(daemon: Daemon, log_file: Path, secret: str, user: str) -> None:
    job_id = daemon.deliveries(channel="out")[0]["job_id"]
    surfaces: dict[str, bytes] = {
        "notifierctl status": ctl(daemon, "status").encode(),
        "notifierctl status --json": ctl(daemon, "status", "--json").encode(),
        "notifierctl jobs --json": ctl(daemon, "jobs", "--json").encode(),
        "/api/jobs/{id}": daemon_get(daemon, f"/api/jobs/{job_id}"),
        "stderr": daemon.log.read_bytes(),
        "log file": log_file.read_bytes(),
    }
    for path in sorted(daemon.state_dir.iterdir()):
        if path.is_file():
            surfaces[path.name] = path.read_bytes()
    assert b"***" in surfaces["/api/jobs/{id}"], "the remote's echo did not reach the job"
    for surface, content in surfaces.items():
        for name, form in spellings(secret, user).items():
            assert form not in content, f"the secret ({name}) is in {surface}"


def ctl(daemon: Daemon, *args: str) -> str:
    result = daemon.ctl(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def daemon_get(daemon: Daemon, path: str) -> bytes:
    response = requests.get(daemon.url(path), timeout=10)
    assert response.status_code == 200, response.text
    return response.content


def config(params: dict[str, Any]) -> str:
    worker = "email" if "host" in params else "sms"
    spec = {"worker": worker, "retry": {"delay": 0.2, "max_attempts": 2, "jitter": 0}}
    params = {**params, "timeout": 5}
    return yaml.safe_dump(
        {"channels": {"out": {**spec, "params": params}}}, allow_unicode=True, sort_keys=False
    )


def start(make_daemon: DaemonFactory, tmp_path: Path, params: dict[str, Any]) -> Daemon:
    log_file = tmp_path / "notifierd.log"
    return make_daemon(config(params), extra_args=["--log-file", str(log_file)]).start()


def settled_error(daemon: Daemon) -> str:
    def failed() -> str | None:
        found = daemon.deliveries(channel="out")
        errors = [d.get("last_error") or "" for d in found]
        return errors[0] if errors and "***" in errors[0] else None

    return wait_for(failed, timeout=20, what="the remote's refusal, redacted")


def test_smsru_status_text_quoting_the_api_id(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    fake = FakeSmsRu(api_id=SMSRU_SECRET)
    fake.echo_credentials = True
    fake.script(PHONE, 207)
    fake.start()
    try:
        params = {"provider": "smsru", "api_id": SMSRU_SECRET, "phones": [PHONE]}
        daemon = start(make_daemon, tmp_path, {**params, "base_url": fake.base_url})

        assert daemon.send("out", "disk full").status_code == 204

        assert "api_id=***" in settled_error(daemon)
        assert_nowhere(daemon, tmp_path / "notifierd.log", SMSRU_SECRET, "")
    finally:
        fake.stop()


def test_twilio_error_echoing_the_basic_authorization(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fake = FakeTwilio(auth_token=TWILIO_SECRET)
    fake.echo_credentials = True
    fake.script(PHONE, twilio_error(21614))
    fake.start()
    try:
        params = {
            "provider": "twilio",
            "account_sid": DEFAULT_SID,
            "auth_token": TWILIO_SECRET,
            "sender": "+15005550006",
            "phones": [PHONE],
        }
        daemon = start(make_daemon, tmp_path, {**params, "base_url": fake.base_url})

        assert daemon.send("out", "disk full").status_code == 204

        assert "Authorization: Basic" in settled_error(daemon)
        assert_nowhere(daemon, tmp_path / "notifierd.log", TWILIO_SECRET, DEFAULT_SID)
    finally:
        fake.stop()


def test_smtp_535_echoing_the_auth_plain_argument(
    make_daemon: DaemonFactory, tmp_path: Path, certificate: Certificate
) -> None:
    # The server knows another password: the channel's own is refused and echoed back.
    with FakeSmtp(certificate, username=SMTP_USER, password="right", echo_credentials=True) as smtp:
        params = {
            "host": smtp.host,
            "port": smtp.port,
            "username": SMTP_USER,
            "password": SECRET,
            "sender": SMTP_USER,
            "to": [ADDRESS],
            "ca_file": str(certificate.cert),
        }
        daemon = start(make_daemon, tmp_path, params)

        assert daemon.send("out", "disk full").status_code == 204

        assert "535" in settled_error(daemon)
        assert_nowhere(daemon, tmp_path / "notifierd.log", SECRET, SMTP_USER)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, inherited by the daemon the test starts."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_state_dir_database_and_log_file_are_private(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "notifierd.log"
    channels = "channels:\n  out:\n    worker: 'null'\n"
    daemon = make_daemon(channels, extra_args=["--log-file", str(log_file)]).start()
    assert daemon.send("out", "disk full").status_code == 204
    wait_for(
        lambda: [d for d in daemon.deliveries(channel="out") if d["state"] == "delivered"],
        what="the delivery",
    )

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(daemon.state_dir) == 0o700
    database = daemon.state_dir / "notifierd.db"
    for path in (database, database.with_name("notifierd.db-wal"), log_file):
        assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
    shm = database.with_name("notifierd.db-shm")
    assert not shm.exists() or mode(shm) == 0o600

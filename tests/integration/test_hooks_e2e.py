"""End to end through the daemon: an Alertmanager and a Grafana webhook become one delivered
message each; `notifierctl send` and `notifierctl job` talk to the daemon over HTTP, with their
documented exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import requests

from tests.fakes.telegram_api import TOKEN, FakeTelegramApi
from tests.fakes.telegram_entities import plain_text
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory
from tests.integration.test_unicode_e2e import NULL_CHANNEL, telegram_channel

FIXTURES = Path(__file__).parent.parent / "fixtures"
API_TOKEN = "hooks-test-token-0123456789abcdef"


def payload(name: str) -> dict[str, Any]:
    document = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def delivered_message(daemon: Daemon, response: requests.Response) -> str:
    assert response.status_code == 204, response.text
    job_id = response.headers["X-Job-Id"]

    def job() -> dict[str, Any] | None:
        found = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).json()
        states = {d["state"] for d in found["deliveries"]}
        return found if states == {"delivered"} else None

    message = wait_for(job, what=f"job {job_id} delivered")["message"]
    assert isinstance(message, str)
    return message


def test_alertmanager_firing_and_resolved_are_delivered(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    url = daemon.url("/api/hooks/alertmanager/devnull")

    firing = delivered_message(
        daemon, requests.post(url, json=payload("alertmanager_firing"), timeout=10)
    )
    resolved = delivered_message(
        daemon, requests.post(url, json=payload("alertmanager_resolved"), timeout=10)
    )

    assert firing.startswith("[FIRING:3]")
    assert resolved.startswith("[RESOLVED:3]")
    for text in (firing, resolved):
        for expected in ("HighCPU", "DiskFull", "🔥 CPU above 90% on web-1", "on web-3"):
            assert expected in text
    assert len(daemon.deliveries()) == 2


def test_grafana_alert_with_emoji_reaches_a_telegram_html_channel(
    make_daemon: DaemonFactory,
) -> None:
    with FakeTelegramApi(token=TOKEN) as fake:
        config = telegram_channel(fake.url, format="html")
        daemon = make_daemon(config, env={"TELEGRAM_BOT_TOKEN": TOKEN}).start()
        document = payload("grafana_firing")
        document["alerts"][0]["annotations"]["summary"] = "p99 <2.4 s> & rising 📈"

        response = requests.post(daemon.url("/api/hooks/grafana/tg"), json=document, timeout=10)

        assert response.status_code == 204, response.text
        fake.wait_for(lambda records: any(r.accepted for r in records))
        [record] = fake.delivered(1001)
        assert record.params["parse_mode"] == "HTML"
        shown = plain_text(record.text or "", "HTML")
        assert "🚨 API latency" in shown
        assert "p99 <2.4 s> & rising 📈" in shown
        assert "orders queue drained" in shown


def test_500_alerts_are_one_delivered_message(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    document = payload("alertmanager_firing")
    document["alerts"] = [
        document["alerts"][0] | {"annotations": {"summary": f"host-{i} down"}} for i in range(500)
    ]

    message = delivered_message(
        daemon,
        requests.post(daemon.url("/api/hooks/alertmanager/devnull"), json=document, timeout=10),
    )

    shown = message.count(" down")
    assert 0 < shown < 500
    assert f"and {500 - shown} more alerts" in message
    assert len(message) <= 4096


def ctl(
    daemon: Daemon, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / "notifierctl"), *args],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NOTIFIERD_PORT": str(daemon.port), **(env or {})},
    )


def test_notifierctl_send_and_job(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the API's tokens\n{API_TOKEN}\n", encoding="utf-8")
    daemon = make_daemon(NULL_CHANNEL, env={"NOTIFIERD_API_TOKENS_FILE": str(tokens)}).start()
    with_token = {"NOTIFIERD_API_TOKENS_FILE": str(tokens)}
    text = "🔥 disk full on web-1\nдиск заполнен"

    sent = ctl(daemon, "send", "devnull", "-", stdin=text.encode(), env=with_token)

    assert sent.returncode == 0, sent.stderr
    job_id = sent.stdout.decode().strip()
    assert job_id.isdigit()
    job = requests.get(
        daemon.url(f"/api/jobs/{job_id}"),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    ).json()
    assert job["message"] == text

    wait_for(lambda: daemon.deliveries(state="delivered"), what="the delivery")
    shown = ctl(daemon, "job", job_id, "--token-file", str(tokens))
    assert shown.returncode == 0, shown.stderr
    assert "delivered, 1 attempt(s)" in shown.stdout.decode()
    assert "attempt 1 " in shown.stdout.decode()

    unauthorized = ctl(daemon, "send", "devnull", "hi")
    assert unauthorized.returncode == 1
    assert b"HTTP 401: unauthorized" in unauthorized.stderr

    unknown = ctl(daemon, "send", "nope", "hi", env=with_token)
    assert unknown.returncode == 1
    assert b"HTTP 404: unknown_channel: there is no channel named 'nope'" in unknown.stderr

    blank = ctl(daemon, "send", "devnull", "-", stdin=b"   \n", env=with_token)
    assert blank.returncode == 1
    assert b"HTTP 422: required: message must not be blank" in blank.stderr

    not_utf8 = ctl(daemon, "send", "devnull", "-", stdin=b"\xff\xfe", env=with_token)
    assert not_utf8.returncode == 2
    assert b"not valid UTF-8" in not_utf8.stderr

    assert daemon.ctl("pause").returncode == 0
    paused = ctl(daemon, "send", "devnull", "hi", "--delay", "5", env=with_token)
    assert paused.returncode == 4
    assert b"HTTP 503" in paused.stderr
    assert daemon.ctl("resume").returncode == 0

    delayed = ctl(daemon, "send", "devnull", "later", "--delay", "5", env=with_token)
    assert delayed.returncode == 0, delayed.stderr

    unreachable = ctl(daemon, "send", "devnull", "hi", env={"NOTIFIERD_URL": "http://127.0.0.1:1"})
    assert unreachable.returncode == 3
    assert b"cannot reach the daemon" in unreachable.stderr
    assert len(daemon.deliveries()) == 2


ZABBIX_SCRIPT = (
    Path(__file__).parent.parent.parent / "examples" / "monitoring" / "zabbix-notifierd.sh"
)


def test_zabbix_media_type_script_sends_subject_and_body(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{API_TOKEN}\n", encoding="utf-8")
    daemon = make_daemon(NULL_CHANNEL, env={"NOTIFIERD_API_TOKENS": API_TOKEN}).start()
    env = {"PATH": "/usr/bin:/bin", "NOTIFIERD_URL": daemon.url("")}

    def run(extra: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                "/bin/sh",
                str(ZABBIX_SCRIPT),
                "devnull",
                "Problem: CPU & load 🔥",
                "Host: web-1\n+ 5m",
            ],
            capture_output=True,
            timeout=30,
            check=False,
            env=env | extra,
        )

    refused = run({})
    assert refused.returncode != 0
    assert b"unauthorized" in refused.stdout

    sent = run({"NOTIFIERD_TOKEN_FILE": str(token_file)})
    assert sent.returncode == 0, sent.stderr
    [delivery] = wait_for(lambda: daemon.deliveries(state="delivered"), what="the delivery")
    job = requests.get(
        daemon.url(f"/api/jobs/{delivery['job_id']}"),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    ).json()
    assert job["message"] == "Problem: CPU & load 🔥\nHost: web-1\n+ 5m"


def test_alertmanager_retry_with_an_idempotency_key_makes_one_job(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    url = daemon.url("/api/hooks/alertmanager/devnull")
    headers = {"Idempotency-Key": "am-group-1"}

    first = requests.post(url, json=payload("alertmanager_firing"), headers=headers, timeout=10)
    again = requests.post(url, json=payload("alertmanager_firing"), headers=headers, timeout=10)
    other = requests.post(url, json=payload("alertmanager_resolved"), headers=headers, timeout=10)

    assert first.status_code == again.status_code == 204
    assert first.headers["X-Job-Id"] == again.headers["X-Job-Id"]
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    wait_for(lambda: daemon.deliveries(state="delivered"), what="the delivery")
    assert len(daemon.deliveries()) == 1

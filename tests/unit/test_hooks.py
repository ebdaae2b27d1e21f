"""The webhook receivers (`/api/hooks/alertmanager/{channel}`, `/api/hooks/grafana/{channel}`)
around a fake Intake: recorded payloads made into one readable message, fitted into the
channel's limit, templates, and the same auth, limits and maintenance as /api/send."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from notifierd.api.app import build_app
from notifierd.api.hooks import message
from notifierd.cli.daemon import main as daemon_main
from notifierd.config import Channel, load_channels
from notifierd.errors import ConfigError
from notifierd.hooks.payloads import AlertGroup, GrafanaAlertGroup
from tests.unit.conftest import WriteYaml
from tests.unit.test_api import MAX_DELAY, FakeIntake, error_of

FIXTURES = Path(__file__).parent.parent / "fixtures"
AM = "/api/hooks/alertmanager/{}"
GRAFANA = "/api/hooks/grafana/{}"
TOKEN = "a-token-of-enough-length-0123456789"
CHANNELS = """
channels:
  devnull:
    worker: "null"
  tg_html:
    worker: telegram
    params: {token: "1:x", chat_id: 1, format: html}
  tg_md:
    worker: telegram
    params: {token: "1:x", chat_id: 1, format: markdownv2}
  sms:
    worker: sms
    params:
      provider: http
      url: "http://127.0.0.1:1/send?to={phone}&text={message}"
      phones: ["+15550100"]
      max_parts: 1
  templated:
    worker: "null"
    templates:
      alertmanager: >-
        {{ status | upper }} {{ alerts | length }}
        {%- for a in alerts %} {{ a.labels.alertname }}{% endfor %}
        {%- if omitted %} +{{ omitted }}{% endif %}
      grafana: "{{ title }} {{ alerts[0].labels.nothing.deeper }}"
"""

Client = TestClient[web.Request, web.Application]


def payload(name: str) -> dict[str, Any]:
    document = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture
def channels(write_yaml: WriteYaml) -> dict[str, Channel]:
    return load_channels(write_yaml(CHANNELS), default_ttl=3600)


@pytest.fixture
def intake(channels: dict[str, Channel]) -> FakeIntake:
    return FakeIntake(channels)


@pytest.fixture
async def client(intake: FakeIntake) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(intake, 1024 * 1024, MAX_DELAY))) as client:
        yield client


async def post(client: Client, path: str, document: Any) -> tuple[int, bytes]:
    async with client.post(path, json=document) as response:
        return response.status, await response.read()


async def accepted_text(client: Client, intake: FakeIntake, path: str, document: Any) -> str:
    status, body = await post(client, path, document)
    assert status == 204, body
    assert len(intake.accepted) == 1  # one job per request
    return intake.accepted[-1][1].message


async def test_alertmanager_firing_group_is_one_readable_message(
    client: Client, intake: FakeIntake
) -> None:
    text = await accepted_text(client, intake, AM.format("devnull"), payload("alertmanager_firing"))

    assert text.startswith("[FIRING:3]")
    for expected in (
        "HighCPU",
        "DiskFull",
        "🔥 CPU above 90% on web-1",
        "5m load 12.3",
        "CPU above 90% on web-2",
        "Disk /var at 95% on web-3",
        "http://prometheus:9090/graph?g0.expr=cpu",
        "http://alertmanager:9093",
        "(critical)",
        "(warning)",
    ):
        assert expected in text


async def test_alertmanager_resolved_group(client: Client, intake: FakeIntake) -> None:
    text = await accepted_text(
        client, intake, AM.format("devnull"), payload("alertmanager_resolved")
    )

    assert text.startswith("[RESOLVED:3]")
    assert "RESOLVED: DiskFull" in text
    assert "Disk /var at 95% on web-3" in text


async def test_alert_without_annotations_shows_its_labels(
    client: Client, intake: FakeIntake
) -> None:
    document = payload("alertmanager_firing")
    document["alerts"] = [document["alerts"][0] | {"annotations": {}}]

    text = await accepted_text(client, intake, AM.format("devnull"), document)

    assert "instance=web-1:9100" in text


async def test_grafana_group(client: Client, intake: FakeIntake) -> None:
    text = await accepted_text(client, intake, GRAFANA.format("devnull"), payload("grafana_firing"))

    assert text.startswith("[FIRING:1, RESOLVED:1]")
    for expected in (
        "🚨 API latency",
        "p99 latency 2.4 s on checkout",
        "RESOLVED: Queue backlog",
        "orders queue drained",
        "http://grafana:3000/d/xyz?viewPanel=2",
        "http://grafana:3000/alerting/silence/new?matcher=alertname%3DAPI",
    ):
        assert expected in text


def many_alerts(count: int) -> dict[str, Any]:
    document = payload("alertmanager_firing")
    template = document["alerts"][0]
    document["alerts"] = [
        copy.deepcopy(template)
        | {"annotations": {"summary": f"CPU above 90% on host-{i:03d}"}, "fingerprint": str(i)}
        for i in range(count)
    ]
    return document


@pytest.mark.parametrize("channel", ["devnull", "tg_html", "tg_md", "sms"])
async def test_500_alerts_make_one_message_within_the_limit(
    client: Client, intake: FakeIntake, channels: dict[str, Channel], channel: str
) -> None:
    text = await accepted_text(client, intake, AM.format(channel), many_alerts(500))

    assert channels[channel].check_message(text) is None
    shown = text.count("CPU above 90% on host")
    assert 0 <= shown < 500
    assert f"and {500 - shown} more alerts" in text
    if channel == "devnull":
        assert 3500 < len(text) <= 4096  # full, not just safely short


async def test_markup_channels_get_the_text_escaped(
    client: Client, intake: FakeIntake, channels: dict[str, Channel]
) -> None:
    document = payload("alertmanager_firing")
    document["alerts"][0]["annotations"]["summary"] = "<b>load</b> > 5 & *rising* [x](y) 1.5_"

    for channel, expected in (
        ("tg_html", "&lt;b&gt;load&lt;/b&gt; &gt; 5 &amp; *rising*"),
        ("tg_md", r"<b\>load</b\> \> 5 & \*rising\* \[x\]\(y\) 1\.5\_"),
    ):
        status, body = await post(client, AM.format(channel), document)
        assert status == 204, body
        text = intake.accepted[-1][1].message
        assert expected in text
        assert channels[channel].check_message(text) is None


async def test_control_characters_in_labels_do_not_refuse_the_alert(
    client: Client, intake: FakeIntake
) -> None:
    document = payload("alertmanager_firing")
    document["alerts"][0]["annotations"]["summary"] = "bell\x07 and \ud83d lone"

    text = await accepted_text(client, intake, AM.format("devnull"), document)

    assert "bell  and   lone" in text


async def test_template_replaces_the_built_in_text_and_is_fitted(
    client: Client, intake: FakeIntake
) -> None:
    text = await accepted_text(
        client, intake, AM.format("templated"), payload("alertmanager_firing")
    )
    assert text == "FIRING 3 HighCPU HighCPU DiskFull"

    status, _ = await post(client, AM.format("templated"), many_alerts(2000))
    assert status == 204
    fitted = intake.accepted[-1][1].message
    assert len(fitted) <= 4096
    assert fitted.endswith(f"+{2000 - int(fitted.split()[1])}")


async def test_template_render_error_is_a_422_naming_the_template(
    client: Client, intake: FakeIntake
) -> None:
    status, body = await post(client, GRAFANA.format("templated"), payload("grafana_firing"))

    assert status == 422
    error = error_of(body)
    assert error["code"] == "template_error"
    assert error["field"] == "templates.grafana"
    assert "templates.grafana" in error["description"]
    assert intake.accepted == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("alerts"), "alerts"),
        (lambda d: d.update(status=3), "status"),
        (lambda d: d["alerts"][1].pop("status"), "alerts.1.status"),
        (
            lambda d: d["alerts"][2].update(labels={"a": ["not", "a", "string"]}),
            "alerts.2.labels.a",
        ),
        (lambda d: d.update(alerts="none"), "alerts"),
    ],
    ids=["no-alerts", "status-type", "alert-status", "label-type", "alerts-type"],
)
async def test_malformed_payload_is_a_422_naming_the_field(
    client: Client, intake: FakeIntake, change: Any, field: str
) -> None:
    document = payload("alertmanager_firing")
    change(document)

    status, body = await post(client, AM.format("devnull"), document)

    assert status == 422
    error = error_of(body)
    assert error["code"] == "invalid_payload"
    assert error["field"] == field
    assert intake.accepted == []


async def test_hooks_share_send_refusals(client: Client, intake: FakeIntake) -> None:
    status, body = await post(client, AM.format("nope"), payload("alertmanager_firing"))
    assert (status, error_of(body)["code"]) == (404, "unknown_channel")

    async with client.post(
        AM.format("devnull"), data=b"[1]", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 422

    async with client.post(
        AM.format("devnull") + "?delay=-1", json=payload("alertmanager_firing")
    ) as response:
        assert (response.status, error_of(await response.read())["field"]) == (422, "delay")

    async with client.post(
        AM.format("devnull") + "?delay=60", json=payload("alertmanager_firing")
    ) as response:
        assert response.status == 204
    assert intake.accepted[-1][1].delay == 60

    intake.unavailable = True
    for path in (AM, GRAFANA):
        status, _ = await post(client, path.format("devnull"), payload("grafana_firing"))
        assert status == 503
    assert len(intake.accepted) == 1


async def test_hooks_body_limit_and_auth(channels: dict[str, Channel]) -> None:
    intake = FakeIntake(channels)
    app = build_app(intake, 2048, MAX_DELAY, tokens=(TOKEN,))
    async with TestClient(TestServer(app)) as client:
        status, body = await post(client, AM.format("devnull"), many_alerts(50))
        assert (status, error_of(body)["code"]) == (401, "unauthorized")
        for path in (AM, GRAFANA):
            async with client.post(
                path.format("devnull"),
                json=many_alerts(50),
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 413
            async with client.post(
                path.format("devnull"),
                json=payload("alertmanager_firing"),
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 204
    assert len(intake.accepted) == 2


BROKEN_TEMPLATE = """
channels:
  ok:
    worker: "null"
  alerts:
    worker: "null"
    templates:
      alertmanager: "{% for a in alerts %}{{ a.labels.alertname }}"
      grafana: "{{ title }"
"""


def test_broken_template_is_a_config_error_naming_file_and_key(write_yaml: WriteYaml) -> None:
    path = write_yaml(BROKEN_TEMPLATE)

    with pytest.raises(ConfigError) as raised:
        load_channels(path, default_ttl=3600)

    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: channels.alerts.templates.alertmanager: template error")
    assert "line 1" in lines[0]
    assert lines[1].startswith(f"{path}: channels.alerts.templates.grafana: template error")


def test_broken_template_is_refused_by_check_config(
    write_yaml: WriteYaml, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml(BROKEN_TEMPLATE)

    assert daemon_main(["check-config", "--config", str(path)]) == 2

    err = capsys.readouterr().err
    assert f"{path}: channels.alerts.templates.alertmanager: template error" in err
    assert f"{path}: channels.alerts.templates.grafana: template error" in err


def test_unknown_template_key_is_a_config_error(write_yaml: WriteYaml) -> None:
    path = write_yaml('channels: {a: {worker: "null", templates: {zabbix: "x"}}}')

    with pytest.raises(ConfigError, match=r"channels\.a\.templates\.zabbix: unknown key"):
        load_channels(path, default_ttl=3600)


async def test_template_cannot_reach_python_internals(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        'channels: {a: {worker: "null",'
        ' templates: {alertmanager: "{{ alerts.__class__.__mro__ }}"}}}'
    )
    intake = FakeIntake(load_channels(path, default_ttl=3600))
    async with TestClient(TestServer(build_app(intake, 1024 * 1024, MAX_DELAY))) as client:
        status, body = await post(client, AM.format("a"), payload("alertmanager_firing"))
    assert status == 422
    error = error_of(body)
    assert error["field"] == "templates.alertmanager"
    assert "unsafe" in error["description"]
    assert intake.accepted == []


EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "monitoring"


def test_example_channels_pass_check_config_and_render_the_payloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:example")
    channels = load_channels(EXAMPLES / "channels.yaml", default_ttl=3600)

    for hook, model, name in (
        ("alertmanager", AlertGroup, "alertmanager_firing"),
        ("grafana", GrafanaAlertGroup, "grafana_firing"),
    ):
        group = model.model_validate(payload(name))
        for channel in channels.values():
            text = message(channel, hook, group)
            assert channel.check_message(text) is None
            assert "on web-1" in text or "p99 latency" in text


def test_example_senders_post_to_the_hook_routes() -> None:
    alertmanager = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text(encoding="utf-8"))
    grafana = yaml.safe_load((EXAMPLES / "grafana-contact-point.yaml").read_text(encoding="utf-8"))

    [webhook] = alertmanager["receivers"][0]["webhook_configs"]
    assert webhook["url"].endswith("/api/hooks/alertmanager/alerts")
    [receiver] = grafana["contactPoints"][0]["receivers"]
    assert receiver["settings"]["url"].endswith("/api/hooks/grafana/alerts")


async def test_literal_filter_escapes_any_value_for_the_channels_format(
    write_yaml: WriteYaml,
) -> None:
    path = write_yaml(
        """
        channels:
          tg:
            worker: telegram
            params: {token: "1:x", chat_id: 1, format: html}
            templates:
              alertmanager: '<b>{{ alerts | length | literal }}</b> {{ "<&>" | literal }}'
        """
    )
    intake = FakeIntake(load_channels(path, default_ttl=3600))
    async with TestClient(TestServer(build_app(intake, 1024 * 1024, MAX_DELAY))) as client:
        status, body = await post(client, AM.format("tg"), payload("alertmanager_firing"))
    assert status == 204, body
    assert intake.accepted[0][1].message == "<b>3</b> &lt;&amp;&gt;"

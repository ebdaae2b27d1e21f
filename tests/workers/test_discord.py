"""The `discord` worker on its own against the fake webhook: Discord's bucket headers kept to,
and the webhook URL's parts treated as secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifierd.workers.discord import DiscordParams, DiscordWorker
from notifierd.workers.remote import plain_http_elsewhere, url_secrets
from tests.fakes.discord import FakeDiscord
from tests.workers.helpers import delivery


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord(bucket=(5, 1.0))
    server.start()
    yield server
    server.stop()


def test_an_empty_bucket_is_waited_out_instead_of_collecting_a_429(fake: FakeDiscord) -> None:
    worker = DiscordWorker("alerts", DiscordParams(webhook_url=fake.webhook_url))
    worker.open()
    try:
        for number in range(7):
            worker.send(delivery("", f"message {number}"))
    finally:
        worker.close()

    assert len(fake.messages) == 7  # no request was answered 429
    assert fake.requests[5].at - fake.requests[0].at >= 1.0


def test_the_webhook_urls_token_is_a_secret_in_each_spelling() -> None:
    url = "https://discord.com/api/webhooks/123/aXz9-QkLm_4r7TtWvB2nC5dE8fG1?thread_id=9"
    params = DiscordParams(webhook_url=url)

    assert DiscordWorker.secrets(params) == [
        url,
        "/api/webhooks/123/aXz9-QkLm_4r7TtWvB2nC5dE8fG1?thread_id=9",
        "aXz9-QkLm_4r7TtWvB2nC5dE8fG1",
    ]
    assert url_secrets("http://127.0.0.1:8080/") == ["http://127.0.0.1:8080/"]


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://hooks.example.org/x", True),
        ("https://hooks.example.org/x", False),
        ("http://127.0.0.1:9/x", False),
        ("http://localhost/x", False),
        ("http://[::1]:9/x", False),
    ],
)
def test_plain_http_is_warned_about_only_off_this_host(url: str, warned: bool) -> None:
    assert plain_http_elsewhere(url) is warned


def test_a_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="webhook_url must be an http:// or https:// URL"):
        DiscordParams(webhook_url="ftp://discord.com/api/webhooks/1/x")

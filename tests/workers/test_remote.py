"""`BoundedSession`: a remote's answer is read up to 1 MiB, whatever it declares or streams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from aiohttp import web

from notifierd.workers.remote import MAX_ANSWER_BYTES, AnswerTooLarge, BoundedSession
from tests.fakes.server import Huge, Raw, answer, run_app_in_thread


@pytest.fixture
def remote() -> Iterator[tuple[str, list[object]]]:
    replies: list[object] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        return await answer(request, replies.pop(0), 0, None, "test")

    app = web.Application()
    app.router.add_get("/", handle)
    with run_app_in_thread(app) as base_url:
        yield base_url, replies


@pytest.mark.parametrize(
    "reply",
    [Raw(200, "x" * (MAX_ANSWER_BYTES + 1)), Huge(64 * MAX_ANSWER_BYTES)],
    ids=["declared", "streamed"],
)
def test_an_answer_over_the_limit_raises(remote: tuple[str, list[object]], reply: object) -> None:
    base_url, replies = remote
    replies.append(reply)
    with BoundedSession() as session, pytest.raises(AnswerTooLarge, match=str(MAX_ANSWER_BYTES)):
        session.get(base_url, timeout=10)
    assert issubclass(AnswerTooLarge, requests.RequestException)  # a failed request to workers


def test_an_answer_within_the_limit_reads_as_usual(remote: tuple[str, list[object]]) -> None:
    base_url, replies = remote
    replies.append(Raw(200, '{"ok": true}', content_type="application/json"))
    with BoundedSession() as session:
        response = session.get(base_url, timeout=10)
    assert response.json() == {"ok": True} and response.text == '{"ok": true}'

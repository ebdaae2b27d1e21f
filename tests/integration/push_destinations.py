"""The push and Matrix destinations of `test_destinations_e2e`: ntfy (access token and HTTP
Basic), gotify, pushover and matrix, each against its fake."""

from __future__ import annotations

from typing import Any

from tests.fakes import gotify, matrix, ntfy, pushover
from tests.fakes.server import Raw, Reset
from tests.integration.destinations import (
    BadSecret,
    Channel,
    Destination,
    Fake,
    Hidden,
    LengthCase,
    RateCase,
    Refusal,
    TextCase,
    setter,
)

# --- ntfy -------------------------------------------------------------------------------------

NTFY_LOGINS: dict[str, tuple[dict[str, Any], str]] = {
    "token": ({"token": "${NTFY_SECRET}"}, ntfy.TOKEN),
    "basic": ({"username": ntfy.USERNAME, "password": "${NTFY_SECRET}"}, ntfy.PASSWORD),
}
_NTFY_LIMIT = "limit reached: too many requests"


def _ntfy_channel(login: str) -> Channel:
    def channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
        auth, secret = NTFY_LOGINS[login]
        params = {"server": fake.base_url, "topic": "ops-alerts", "timeout": 2, **auth}
        return params, {"NTFY_SECRET": secret}

    return channel


def _ntfy_text(fake: Fake, text: str) -> None:
    [message] = fake.messages
    assert message == type(message)("ops-alerts", text, "Сбой 🔥", 4, ("warning", "db"))


def _ntfy_spoil(fake: Fake) -> None:
    fake.token, fake.login = "tk_revoked00000000000000000000", (ntfy.USERNAME, "old-password")


def _ntfy_mend(fake: Fake) -> None:
    fake.token, fake.login = ntfy.TOKEN, (ntfy.USERNAME, ntfy.PASSWORD)


def _ntfy(login: str) -> Destination:
    secret = NTFY_LOGINS[login][1]
    token = login == "token"
    return Destination(
        id=f"ntfy-{login}",
        worker="ntfy",
        fake=ntfy.FakeNtfy,
        channel=_ntfy_channel(login),
        delivered=lambda fake: [m.message for m in fake.messages],
        text=TextCase(
            _ntfy_text, {"title": "Сбой 🔥", "priority": "high", "tags": ["warning", "db"]}
        ),
        length=(
            LengthCase(
                refused="🔥" * 1024 + "!",  # four bytes each
                reason="4097 bytes of UTF-8 long; this channel accepts at most 4096",
                longest="🔥" * 1024,
            )
            if token
            else None
        ),
        limits=(
            (
                RateCase(
                    ntfy.ntfy_error(429, 42901, _NTFY_LIMIT),
                    (0.2, 0.7),
                    error=f"ntfy: HTTP 429: {_NTFY_LIMIT} (code 42901)",
                    id="ntfy names no time: the channel's retry delay",
                ),
                RateCase(
                    ntfy.ntfy_error(429, 42901, _NTFY_LIMIT, {"Retry-After": "2"}),
                    (2.0, 2.5),
                    error=f"ntfy: HTTP 429: {_NTFY_LIMIT} (code 42901)",
                    id="a proxy's Retry-After",
                ),
            )
            if token
            else ()
        ),
        bad_secrets=(
            BadSecret(_ntfy_spoil, _ntfy_mend, "ntfy: HTTP 401: unauthorized (code 40101): check"),
        ),
        refusal=(
            Refusal(
                ntfy.ntfy_error(400, 40007, "invalid request: priority invalid"),
                "ntfy: HTTP 400: invalid request: priority invalid (code 40007)",
            )
            if token
            else None
        ),
        hidden=Hidden(
            lambda fake: [
                Raw(502, f"<html>bad gateway {secret}</html>"),
                Reset(),
                ntfy.ntfy_error(429, 42901, _NTFY_LIMIT),
            ],
            (secret,),
            "bad gateway ***</html>",
        ),
    )


NTFY_TOKEN = _ntfy("token")
NTFY_BASIC = _ntfy("basic")

# --- gotify -----------------------------------------------------------------------------------


def _gotify_text(fake: Fake, text: str) -> None:
    [message] = fake.messages
    assert (message.message, message.title, message.priority) == (text, "Сбой 🔥", 8)
    assert message.extras == {"client::display": {"contentType": "text/markdown"}}


GOTIFY = Destination(
    id="gotify",
    worker="gotify",
    fake=gotify.FakeGotify,
    channel=lambda fake: (
        {"server": fake.base_url, "token": "${GOTIFY_TOKEN}", "timeout": 2},
        {"GOTIFY_TOKEN": gotify.APP_TOKEN},
    ),
    delivered=lambda fake: [m.message for m in fake.messages],
    text=TextCase(_gotify_text, {"title": "Сбой 🔥", "priority": 8, "markdown": True}),
    # A proxy's 429: Gotify has none of its own.
    limits=(
        RateCase(
            Raw(429, "Too Many Requests", "text/plain", {"Retry-After": "2"}),
            (2.0, 2.5),
            retry_after=2,
        ),
    ),
    bad_secrets=(
        BadSecret(
            setter("token", "AOld.Token.00000"),
            setter("token", gotify.APP_TOKEN),
            f"gotify: HTTP 401: Unauthorized: {gotify.UNAUTHORIZED}: check",
        ),
    ),
    refusal=Refusal(
        gotify.gotify_error(400, "Field 'message' is required"),
        "gotify: HTTP 400: Bad Request: Field 'message' is required",
    ),
    hidden=Hidden(
        lambda fake: [Raw(502, f"<html>bad gateway {gotify.APP_TOKEN}</html>"), Reset()],
        (gotify.APP_TOKEN,),
        "bad gateway ***</html>",
    ),
)

# --- pushover ---------------------------------------------------------------------------------


def _pushover_text(fake: Fake, text: str) -> None:
    [message] = fake.messages
    assert (message.message, message.title, message.priority) == (text, "Сбой 🔥", "1")


def _pushover_mend(fake: Fake) -> None:
    fake.token, fake.user_key = pushover.APP_TOKEN, pushover.USER_KEY


_REVOKED = "zz-revoked-00000000000000000000"

PUSHOVER = Destination(
    id="pushover",
    worker="pushover",
    fake=pushover.FakePushover,
    channel=lambda fake: (
        {
            "token": "${PUSHOVER_TOKEN}",
            "user_key": "${PUSHOVER_USER_KEY}",
            "api_url": fake.api_url,
            "timeout": 2,
        },
        {"PUSHOVER_TOKEN": pushover.APP_TOKEN, "PUSHOVER_USER_KEY": pushover.USER_KEY},
    ),
    delivered=lambda fake: [m.message for m in fake.messages],
    text=TextCase(_pushover_text, {"title": "Сбой 🔥", "priority": 1}),
    length=LengthCase(
        refused="🔥" * 1025,
        reason="1025 characters long; this channel accepts at most 1024",
        longest="🔥" * 1024,
    ),
    # The monthly limit: X-Limit-App-Reset is whole seconds, so the wait is 1.5 to 2.5 s.
    limits=(RateCase(pushover.OverLimit(reset_in=2), (1.4, 3.0), error="monthly message limit"),),
    bad_secrets=(
        BadSecret(
            setter("token", _REVOKED),
            _pushover_mend,
            "pushover: HTTP 400: application token is invalid: check",
            id="token",
        ),
        BadSecret(
            setter("user_key", _REVOKED),
            _pushover_mend,
            "pushover: HTTP 400: user identifier is invalid: check",
            id="user_key",
        ),
    ),
    refusal=Refusal(
        pushover.pushover_error(400, "sound is invalid", sound="invalid"),
        "pushover: HTTP 400: sound is invalid",
        {"sound": "nope"},
    ),
    hidden=Hidden(
        lambda fake: [
            Raw(502, f"<html>bad gateway {pushover.APP_TOKEN} {pushover.USER_KEY}</html>"),
            Reset(),
        ],
        (pushover.APP_TOKEN, pushover.USER_KEY),
        "bad gateway *** ***</html>",
    ),
)

# --- matrix -----------------------------------------------------------------------------------


def matrix_channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
    params = {
        "homeserver": fake.base_url,
        "access_token": "${MATRIX_ACCESS_TOKEN}",
        "room_id": matrix.ROOM_ID,
        "timeout": 2,
    }
    return params, {"MATRIX_ACCESS_TOKEN": matrix.ACCESS_TOKEN}


def _matrix_text(fake: Fake, text: str) -> None:
    [event] = fake.events
    assert event.content == {"msgtype": "m.notice", "body": text}


MATRIX = Destination(
    id="matrix",
    worker="matrix",
    fake=matrix.FakeMatrix,
    channel=matrix_channel,
    delivered=lambda fake: [event.content["body"] for event in fake.events],
    text=TextCase(_matrix_text, {"msgtype": "notice"}),
    limits=(RateCase(matrix.limit_exceeded(1500), (1.5, 2.0), retry_after=1.5),),
    bad_secrets=(
        BadSecret(
            setter("access_token", "syt_revoked_0000000000000000"),
            setter("access_token", matrix.ACCESS_TOKEN),
            "matrix: HTTP 401: M_UNKNOWN_TOKEN: Invalid access token passed.: check",
        ),
    ),
    refusal=Refusal(
        matrix.matrix_error(413, "M_TOO_LARGE", "event too large"),
        "matrix: HTTP 413: M_TOO_LARGE: event too large",
    ),
    hidden=Hidden(
        lambda fake: [
            Raw(502, f"<html>bad gateway {matrix.ACCESS_TOKEN}</html>"),
            Reset(),
            matrix.limit_exceeded(200),
        ],
        (matrix.ACCESS_TOKEN,),
        "bad gateway ***</html>",
    ),
)

PUSH_DESTINATIONS = (NTFY_TOKEN, NTFY_BASIC, GOTIFY, PUSHOVER, MATRIX)

"""The chat destinations of `test_destinations_e2e`: discord, slack (incoming webhook and
chat.postMessage), mattermost, rocketchat and teams (Workflows card and legacy connector),
each against its fake."""

from __future__ import annotations

from typing import Any

from tests.fakes import discord, mattermost, rocketchat, slack, teams
from tests.fakes.server import Raw, Reset
from tests.integration.destinations import (
    TEXT,
    BadSecret,
    Channel,
    Check,
    Destination,
    Fake,
    Hidden,
    LengthCase,
    RateCase,
    Refusal,
    TextCase,
    setter,
)

# --- discord ----------------------------------------------------------------------------------


def _discord_channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
    url = f"{fake.base_url}/api/webhooks/{discord.WEBHOOK_ID}/{discord.WEBHOOK_TOKEN}"
    params = {"webhook_url": "${DISCORD_WEBHOOK}", "timeout": 2, "rate_per_second": None}
    return params, {"DISCORD_WEBHOOK": url}


def _discord_text(fake: Fake, text: str) -> None:
    [message] = fake.messages
    assert message.content == text
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["username"] == "Алерты"


DISCORD = Destination(
    id="discord",
    worker="discord",
    fake=discord.FakeDiscord,
    channel=_discord_channel,
    delivered=lambda fake: [m.content for m in fake.messages],
    text=TextCase(_discord_text, {"username": "Алерты"}),
    length=LengthCase(
        refused="🔥" * 2001,
        reason="2001 characters long; this channel accepts at most 2000",
        longest="🔥" * 2000,
    ),
    # The body's float retry_after (1.5 s) is meant, not the Retry-After header rounded up.
    limits=(RateCase(discord.rate_limited(1.5), (1.5, 1.9), retry_after=1.5),),
    bad_secrets=(
        BadSecret(
            setter("token", "a-token-the-webhook-no-longer-has-0000"),
            setter("token", discord.WEBHOOK_TOKEN),
            "discord: HTTP 401: Invalid Webhook Token (code 50027): set params.webhook_url "
            "of channel 'out'",
        ),
    ),
    refusal=Refusal(
        discord.invalid_form_body("embeds", "This field is required"),
        "discord: HTTP 400: Invalid Form Body (code 50035): embeds: This field is required",
    ),
    hidden=Hidden(
        lambda fake: [
            Raw(
                502,
                "<html>bad gateway for "
                f"/api/webhooks/{discord.WEBHOOK_ID}/{discord.WEBHOOK_TOKEN}</html>",
            ),
            Reset(),
            discord.rate_limited(0.2),
            Raw(401, '{"message": "401: Unauthorized", "code": 0}', "application/json"),
        ],
        (discord.WEBHOOK_TOKEN,),
        # The answer that quoted the webhook's path is logged, the path replaced.
        "discord: HTTP 502: <html>bad gateway for ***</html>",
    ),
)

# --- slack ------------------------------------------------------------------------------------


def _slack_channel(mode: str) -> Channel:
    def channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
        common = {"timeout": 2, "rate_per_second": None}
        if mode == "webhook":
            params: dict[str, Any] = {"webhook_url": "${SLACK_SECRET}", **common}
            return params, {"SLACK_SECRET": fake.webhook_url}
        params = {"token": "${SLACK_SECRET}", "channel_id": slack.CHANNEL_ID, **common}
        params["api_url"] = fake.api_url
        return params, {"SLACK_SECRET": slack.BOT_TOKEN}

    return channel


def _slack_text(mode: str) -> Check:
    def check(fake: Fake, text: str) -> None:
        [message] = fake.messages
        assert "&lt;!channel&gt;" in message.text and "a&amp;b" in message.text
        assert slack.shown(message.text) == text
        if mode == "bot":
            assert message.channel == slack.CHANNEL_ID

    return check


def _slack_spoil(fake: Fake) -> None:
    fake.webhook_secret = fake.bot_token = "revoked-0000"


def _slack_mend(fake: Fake) -> None:
    fake.webhook_secret, fake.bot_token = slack.WEBHOOK_SECRET, slack.BOT_TOKEN


def _quoted(fake: Fake, mode: str) -> str:
    return str(fake.webhook_url) if mode == "webhook" else slack.BOT_TOKEN


def _slack(mode: str, limit: Raw, error: str, refusal: Raw, refused: str) -> Destination:
    secret = slack.WEBHOOK_SECRET if mode == "webhook" else slack.BOT_TOKEN
    return Destination(
        id=f"slack-{mode}",
        worker="slack",
        fake=slack.FakeSlack,
        channel=_slack_channel(mode),
        delivered=lambda fake: [m.text for m in fake.messages],
        # Unescaped, <!channel> would notify everyone and <http://x|y> would be a link.
        text=TextCase(
            _slack_text(mode), message=TEXT + "\n<!channel> <http://evil.example|docs> a&b"
        ),
        length=(
            LengthCase("<" * 10_001, "40004 characters once & < > are escaped")  # 40,004 escaped
            if mode == "bot"
            else None
        ),
        limits=(RateCase(limit, (2.0, 2.5), retry_after=2),),
        bad_secrets=(BadSecret(_slack_spoil, _slack_mend, error + ": check params."),),
        refusal=Refusal(refusal, refused),
        hidden=Hidden(
            lambda fake: [
                Raw(502, f"<html>bad gateway {_quoted(fake, mode)}</html>"),
                Reset(),
                slack.webhook_error(429, "rate_limited", retry_after=0.2),
            ],
            (secret,),
            "bad gateway ***</html>",
        ),
    )


SLACK_WEBHOOK = _slack(
    "webhook",
    slack.webhook_error(429, "rate_limited", retry_after=2),
    "slack: HTTP 403: invalid_token",
    slack.webhook_error(400, "invalid_payload"),
    "slack: HTTP 400: invalid_payload",
)
SLACK_BOT = _slack(
    "bot",
    slack.api_error("ratelimited", status=429, retry_after=2),
    "slack: chat.postMessage: invalid_auth",
    slack.api_error("msg_too_long"),
    "slack: chat.postMessage: msg_too_long",
)

# --- mattermost -------------------------------------------------------------------------------


def _mattermost_text(fake: Fake, text: str) -> None:
    [post] = fake.posts
    assert post.payload == {"text": text, "username": "Алерты", "channel": "town-square"}


MATTERMOST = Destination(
    id="mattermost",
    worker="mattermost",
    fake=mattermost.FakeMattermost,
    channel=lambda fake: (
        {"webhook_url": "${MATTERMOST_WEBHOOK_URL}", "timeout": 2},
        {"MATTERMOST_WEBHOOK_URL": fake.webhook_url},
    ),
    delivered=lambda fake: [p.text for p in fake.posts],
    text=TextCase(_mattermost_text, {"username": "Алерты", "channel": "town-square"}),
    limits=(RateCase(mattermost.rate_limited(2), (2.0, 2.5), retry_after=2),),
    bad_secrets=(
        BadSecret(
            setter("hook_id", "deleted0000000000000000000"),
            setter("hook_id", mattermost.HOOK_ID),
            "mattermost: HTTP 400: Invalid webhook. (web.incoming_webhook.invalid.app_error): "
            "check",
        ),
    ),
    refusal=Refusal(
        mattermost.app_error(400, "web.incoming_webhook.parse.app_error", "Unable to parse data."),
        "mattermost: HTTP 400: Unable to parse data. (web.incoming_webhook.parse.app_error)",
    ),
    hidden=Hidden(
        lambda fake: [Raw(502, f"<html>bad gateway {fake.webhook_url}</html>"), Reset()],
        (mattermost.HOOK_ID,),
        "bad gateway ***</html>",
    ),
)

# --- rocketchat -------------------------------------------------------------------------------


def _rocketchat_text(fake: Fake, text: str) -> None:
    [message] = fake.messages
    assert message.payload == {"text": text, "alias": "Алерты", "emoji": ":bell:"}


ROCKETCHAT = Destination(
    id="rocketchat",
    worker="rocketchat",
    fake=rocketchat.FakeRocketChat,
    channel=lambda fake: (
        {"webhook_url": "${ROCKETCHAT_WEBHOOK_URL}", "timeout": 2},
        {"ROCKETCHAT_WEBHOOK_URL": fake.webhook_url},
    ),
    delivered=lambda fake: [m.text for m in fake.messages],
    text=TextCase(_rocketchat_text, {"alias": "Алерты", "emoji": ":bell:"}),
    length=LengthCase(
        refused="🔥" * 5001,
        reason="5001 characters long; this channel accepts at most 5000",
        longest="🔥" * 5000,
    ),
    limits=(
        RateCase(rocketchat.TooManyRequests(2), (1.9, 2.6), error="[error-too-many-requests]"),
    ),
    bad_secrets=(
        BadSecret(
            setter("token", "regenerated00000000000000000000"),
            setter("token", rocketchat.TOKEN),
            "rocketchat: HTTP 400: Invalid integration id or token provided.: check",
        ),
    ),
    refusal=Refusal(
        rocketchat.failure(400, "error-message-size-exceeded"),
        "rocketchat: HTTP 400: error-message-size-exceeded",
    ),
    hidden=Hidden(
        lambda fake: [Raw(502, f"<html>bad gateway {fake.webhook_url}</html>"), Reset()],
        (rocketchat.TOKEN,),
        "bad gateway ***</html>",
    ),
)

# --- teams ------------------------------------------------------------------------------------


def _teams_text(fmt: str) -> Check:
    def check(fake: Fake, text: str) -> None:
        assert fake.texts == [text]
        if fmt == "card":
            [payload] = fake.payloads
            [block] = payload["attachments"][0]["content"]["body"]
            assert block == {"type": "TextBlock", "text": text, "wrap": True}

    return check


def _teams_channel(fmt: str) -> Channel:
    def channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
        url = fake.connector_url if fmt == "connector" else fake.workflow_url
        params = {"webhook_url": "${TEAMS_WEBHOOK_URL}", "timeout": 2, "format": fmt}
        return params, {"TEAMS_WEBHOOK_URL": url}

    return channel


TEAMS = Destination(
    id="teams",
    worker="teams",
    fake=teams.FakeTeams,
    channel=_teams_channel("card"),
    delivered=lambda fake: list(fake.texts),
    text=TextCase(_teams_text("card")),
    limits=(RateCase(teams.throttled(2), (2.0, 2.5), retry_after=2),),
    bad_secrets=(
        BadSecret(
            setter("signature", "regenerated-0000000000000000"),
            setter("signature", teams.SIGNATURE),
            "teams: HTTP 401: DirectApiAuthorizationRequired: The request must be authenticated",
        ),
    ),
    refusal=Refusal(
        teams.teams_error(400, "InvalidRequestContent", "The input body is not valid."),
        "teams: HTTP 400: InvalidRequestContent: The input body is not valid.",
    ),
    hidden=Hidden(
        lambda fake: [
            Raw(502, f"<html>bad gateway sig={teams.SIGNATURE}</html>"),
            Reset(),
            teams.throttled(0),
        ],
        (teams.SIGNATURE,),
        "bad gateway sig=***</html>",
    ),
)
TEAMS_CONNECTOR = Destination(
    id="teams-connector",
    worker="teams",
    fake=teams.FakeTeams,
    channel=_teams_channel("connector"),
    delivered=lambda fake: list(fake.texts),
    text=TextCase(_teams_text("connector")),
)

CHAT_DESTINATIONS = (
    DISCORD,
    SLACK_WEBHOOK,
    SLACK_BOT,
    MATTERMOST,
    ROCKETCHAT,
    TEAMS,
    TEAMS_CONNECTOR,
)

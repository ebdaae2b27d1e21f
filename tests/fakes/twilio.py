"""A fake of Twilio's Messages API, speaking its real protocol.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic with `AccountSid:AuthToken`
or with one of the account's API keys (`KeySid:KeySecret`, the account SID still in the URL),
a form-urlencoded body (JSON is refused, error 21604 as Twilio does) with `To`, `Body`,
`From` or `MessagingServiceSid`, and an optional `ValidityPeriod` (1..36000 seconds, else
21624). `201` with the Message resource on success; errors are `{"code", "message",
"more_info", "status"}` with the HTTP status in `status`.

Script answers per `To` number; unscripted numbers are accepted:

    fake = FakeTwilio()
    fake.script("+15005550001", twilio_error(21211), rate_limited(retry_after=2), ACCEPT)
    with fake as base_url: ...
    fake.messages   # what was accepted (and what a 500-after-recording kept)
    fake.requests   # every request, as received

With `echo_credentials = True` every error message repeats the request's `Authorization`
header (base64 of `AccountSid:AuthToken`), as a careless proxy in front of an API might.

Replies: `ACCEPT`, `twilio_error(code, status=400)`, `rate_limited(retry_after=None)`,
`server_error(status=500, code=20500, recorded=True)`, and the shared `Raw`, `Slow`, `Reset`.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace

from aiohttp import web

from tests.fakes.server import (
    RecordedRequest,
    ThreadedServer,
    answer,
    record,
    unwrap_slow,
)

DEFAULT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_TOKEN = "tw-auth-token-3f9c0a7e"
DEFAULT_API_KEY = ("SK" + "fedcba9876543210" * 2, "tw-key-secret-81d2b4c6")

ERROR_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21212: "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID.",
    21602: "Message body is required.",
    21603: "The 'From' number or a MessagingServiceSid is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21624: "Invalid validity period value",
    21659: "The 'From' number is not a Twilio phone number.",
}


@dataclass(frozen=True)
class Accept:
    """201 with the Message resource."""


ACCEPT = Accept()


@dataclass(frozen=True)
class TwilioError:
    status: int
    code: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Record the message as sent before answering (Twilio's 20500 may have sent it).
    recorded: bool = False


def twilio_error(code: int, status: int = 400, message: str | None = None) -> TwilioError:
    return TwilioError(status, code, message or ERROR_MESSAGES.get(code, "Error"))


def rate_limited(retry_after: int | None = None) -> TwilioError:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return TwilioError(429, 20429, ERROR_MESSAGES[20429], headers)


def server_error(status: int = 500, code: int = 20500, recorded: bool = True) -> TwilioError:
    return TwilioError(status, code, ERROR_MESSAGES.get(code, "Error"), recorded=recorded)


@dataclass(frozen=True)
class TwilioMessage:
    sid: str
    to: str
    body: str
    from_: str | None
    messaging_service_sid: str | None


class FakeTwilio(ThreadedServer):
    def __init__(
        self,
        account_sid: str = DEFAULT_SID,
        auth_token: str = DEFAULT_TOKEN,
        api_key: tuple[str, str] = DEFAULT_API_KEY,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.echo_credentials = False
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.messages: list[TwilioMessage] = []
        self._scripts: defaultdict[str, deque[object]] = defaultdict(deque)
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create_message)
        super().__init__(app)

    def script(self, phone: str, *replies: object) -> None:
        """Answer the next requests to `phone` with `replies`, in order."""
        self._scripts[phone].extend(replies)

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        refusal = self._check(request, recorded)
        if refusal is not None:
            return _error_response(self._echoing(request, refusal))
        to = recorded.params["To"]
        script = self._scripts[to]
        delay, reply = unwrap_slow(script.popleft() if script else ACCEPT, ACCEPT)
        own: web.StreamResponse | None = None
        if isinstance(reply, Accept):
            message = self._keep(recorded)
            own = web.json_response(_resource(message, self.account_sid), status=201)
        elif isinstance(reply, TwilioError):
            if reply.recorded:
                self._keep(recorded)
            own = _error_response(self._echoing(request, reply))
        return await answer(request, reply, delay, own, "Twilio")

    def _echoing(self, request: web.Request, error: TwilioError) -> TwilioError:
        if not self.echo_credentials:
            return error
        authorization = request.headers.get("Authorization", "")
        return replace(error, message=f"{error.message} (Authorization: {authorization})")

    def _check(self, request: web.Request, recorded: RecordedRequest) -> TwilioError | None:
        accepted = {
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            for user, password in ((self.account_sid, self.auth_token), self.api_key)
        }
        if (
            request.match_info["sid"] != self.account_sid
            or request.headers.get("Authorization") not in accepted
        ):
            return twilio_error(20003, status=401)
        if recorded.content_type != "application/x-www-form-urlencoded":
            return twilio_error(21604)
        params = recorded.params
        if not params.get("To"):
            return twilio_error(21604)
        if re.fullmatch(r"\+[1-9][0-9]{7,14}", params["To"]) is None:
            return twilio_error(21211)
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return twilio_error(21603)
        if not params.get("Body"):
            return twilio_error(21602)
        if len(params["Body"]) > 1600:
            return twilio_error(21617)
        validity = params.get("ValidityPeriod")
        if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36000):
            return twilio_error(21624)
        return None

    def _keep(self, recorded: RecordedRequest) -> TwilioMessage:
        params = recorded.params
        message = TwilioMessage(
            sid="SM" + secrets.token_hex(16),
            to=params["To"],
            body=params["Body"],
            from_=params.get("From"),
            messaging_service_sid=params.get("MessagingServiceSid"),
        )
        self.messages.append(message)
        return message


def _resource(message: TwilioMessage, account_sid: str) -> dict[str, object]:
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "to": message.to,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "body": message.body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{message.sid}.json",
    }


def _error_response(error: TwilioError) -> web.Response:
    body = {
        "code": error.code,
        "message": error.message,
        "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
        "status": error.status,
    }
    return web.json_response(body, status=error.status, headers=error.headers)

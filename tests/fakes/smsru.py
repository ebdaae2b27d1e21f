"""A fake of SMS.ru's `sms/send`, speaking its real protocol.

GET or POST `/sms/send` with `api_id`, `to` (one number or up to 100, comma-separated),
`msg`, `json=1` and optional `from`. The answer is HTTP 200 even for errors: a request-level
`status_code`, and with 100 one status per number under `sms`:

    {"status": "OK", "status_code": 100, "balance": 4122.56,
     "sms": {"79251234567": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"},
             "74993221627": {"status": "ERROR", "status_code": 207, "status_text": "..."}}}

A wrong `api_id` gets the request-level status 200. Script answers:

    fake = FakeSmsRu()
    fake.script("+79251234567", 207, 100)   # per-number codes for the next requests with it
    fake.script_request(220, Raw(502, "<html>Bad Gateway</html>"), Slow(5))  # whole requests
    fake.messages   # (number, text, sms_id, sender) of each accepted number
    fake.requests   # every request, as received

With `echo_credentials = True` every `status_text` quotes the request's parameters, the
`api_id` among them, as SMS.ru's own texts sometimes quote what they refused.

Request replies are an `int` (a request-level error code), `Raw`, `Slow`, `Reset`; a bare
`Slow` answers normally after the delay (the numbers are recorded first).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.server import (
    RecordedRequest,
    ThreadedServer,
    answer,
    record,
    unwrap_slow,
)

DEFAULT_API_ID = "7B3A4C1D-0000-1111-2222-3C4D5E6F7A8B"

STATUS_TEXTS = {
    100: "Сообщение принято к отправке",
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",
    202: "Неправильно указан номер телефона получателя, либо на него нет маршрута",
    203: "Нет текста сообщения",
    204: "Имя отправителя не согласовано с администрацией",
    205: "Сообщение слишком длинное (превышает 8 СМС)",
    206: "Будет превышен или уже превышен дневной лимит на отправку сообщений",
    207: "На этот номер нет маршрута для доставки сообщений",
    209: "Вы добавили этот номер (или один из номеров) в стоп-лист",
    220: "Сервис временно недоступен, попробуйте чуть позже",
    230: "Превышен общий лимит количества сообщений на этот номер в день",
    231: "Превышен лимит одинаковых сообщений на этот номер в минуту",
    232: "Превышен лимит одинаковых сообщений на этот номер в день",
    233: "Превышен лимит отправки повторных сообщений с кодом на этот номер "
    "за короткий промежуток времени",
    300: "Неправильный token (возможно истек срок действия, либо ваш IP изменился)",
    301: "Неправильный api_id, либо логин/пароль",
    500: "Ошибка на сервере. Повторите запрос.",
}


@dataclass(frozen=True)
class SmsRuMessage:
    number: str
    text: str
    sms_id: str
    sender: str | None


class FakeSmsRu(ThreadedServer):
    def __init__(self, api_id: str = DEFAULT_API_ID, balance: float = 4122.56) -> None:
        self.api_id = api_id
        self.balance = balance
        self.echo_credentials = False
        self.requests: list[RecordedRequest] = []
        self.messages: list[SmsRuMessage] = []
        self._numbers: defaultdict[str, deque[int]] = defaultdict(deque)
        self._request_replies: deque[object] = deque()
        self._ids = itertools.count(10000000)
        app = web.Application()
        app.router.add_route("*", "/sms/send", self._send)
        super().__init__(app)

    def script(self, phone: str, *codes: int) -> None:
        """Give `phone` (with or without '+') these per-number status codes, in order."""
        self._numbers[phone.lstrip("+")].extend(codes)

    def script_request(self, *replies: object) -> None:
        """Answer the next whole requests with these, in order, before any per-number status."""
        self._request_replies.extend(replies)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        reply = self._request_replies.popleft() if self._request_replies else None
        delay, reply = unwrap_slow(reply, None)
        own = None
        if isinstance(reply, int):
            own = self._answer(recorded, _status(reply))
        elif reply is None:
            own = self._answer(recorded, self._process(recorded))
        return await answer(request, reply, delay, own, "SMS.ru")

    def _process(self, recorded: RecordedRequest) -> dict[str, object]:
        params = recorded.params
        if params.get("api_id") != self.api_id:
            return _status(200)
        text = params.get("msg", "")
        numbers = [number.strip().lstrip("+") for number in params.get("to", "").split(",")]
        numbers = [number for number in numbers if number]
        if not numbers:
            return _status(202)
        if len(numbers) > 100:
            return _status(207)
        answer: dict[str, object] = {"status": "OK", "status_code": 100, "balance": self.balance}
        per_number: dict[str, object] = {}
        for number in numbers:
            script = self._numbers[number]
            code = script.popleft() if script else (100 if text else 203)
            if code != 100:
                per_number[number] = _status(code)
                continue
            sms_id = f"202401-{next(self._ids)}"
            self.messages.append(SmsRuMessage(number, text, sms_id, params.get("from")))
            per_number[number] = {"status": "OK", "status_code": 100, "sms_id": sms_id}
        answer["sms"] = per_number
        return answer

    def _answer(self, recorded: RecordedRequest, answer: dict[str, object]) -> web.Response:
        if self.echo_credentials:
            _quote_request(answer, recorded)
        if recorded.params.get("json") == "1":
            return web.json_response(answer, dumps=_dumps)
        # Without json=1 SMS.ru answers in lines: the code, then one id per number.
        lines = [str(answer["status_code"])]
        sms = answer.get("sms")
        if isinstance(sms, dict):
            lines += [str(entry.get("sms_id", entry.get("status_code"))) for entry in sms.values()]
        return web.Response(text="\n".join(lines))


def _quote_request(answer: dict[str, object], recorded: RecordedRequest) -> None:
    query = urlencode(recorded.params)
    per_number = answer.get("sms")
    entries = [answer, *(per_number.values() if isinstance(per_number, dict) else [])]
    for entry in entries:
        if isinstance(entry, dict) and "status_text" in entry:
            entry["status_text"] = f"{entry['status_text']} (запрос: {query})"


def _status(code: int) -> dict[str, object]:
    return {
        "status": "OK" if code == 100 else "ERROR",
        "status_code": code,
        "status_text": STATUS_TEXTS.get(code, "Неизвестная ошибка"),
    }


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)

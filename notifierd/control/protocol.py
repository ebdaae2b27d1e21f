"""One request per connection: a JSON object on one line, answered by one JSON line.

Request: `{"command": "status", "args": {...}}`.
Answer: `{"ok": true, "result": ...}` or `{"ok": false, "error": "a sentence"}`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a request or an answer."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}

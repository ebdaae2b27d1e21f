"""The base class every worker type derives from.

A worker type declares its parameters as a pydantic model (`Params`), the text it accepts
(`max_length` and `allowed_characters`, from which the default message pattern is built), how
a channel fans a job out to recipients, and how fast it may send. One instance lives in each
worker process of a channel; `send` runs there, synchronously, one delivery at a time.

`send` returns when the remote accepted the message, or raises:

- `TemporaryFailure(message, retry_after=None)`: could not connect, timeout, 5xx. The
  delivery is retried per the channel's policy; `retry_after` overrides the computed delay and
  cools the whole channel down.
- `RateLimited(message, retry_after=None)`: the remote asked to slow down (429). Retried after
  `retry_after` without being charged an attempt; every channel with the same `rate_key`
  cools down for that long.
- `PermanentFailure(message)`: the remote refused this message. The delivery ends FAILED.
- `ChannelMisconfigured(message)`: the channel's own settings are wrong (bad token). The
  delivery is not charged an attempt and stays queued; the channel shows the error.

Any other exception is treated as a temporary failure and logged with its traceback.
The worker process removes the channel's secrets (`Worker.secrets`), in every spelling a
remote may echo, from each error text and log event before they leave it.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from notifierd.messages import Delivery
from notifierd.redaction import secret_values

# Latin and Cyrillic letters, digits, ASCII punctuation and the typographic punctuation that
# Russian and English texts use (SPEC "text"), plus any whitespace including line breaks.
DEFAULT_ALLOWED_CHARACTERS = (
    r"A-Za-z\u00C0-\u024F\u0400-\u04FF0-9\s"
    r"!-/:-@\[-`{-~"
    r"\u00A0\u00A7\u00A9\u00AB\u00AE\u00B0\u00B1\u00B7\u00BB"
    r"\u2010-\u2015\u2018-\u201F\u2022\u2026\u2030\u2039\u203A\u20AC\u20BD\u2116\u2122"
)


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


#: A parameter holding a regular expression: checked at config load, with a readable error.
RegexPattern = Annotated[str, AfterValidator(_valid_regex)]


class NoParams(BaseModel):
    """Parameters of a worker type that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def build_pattern(allowed_characters: str, max_length: int) -> str:
    """A pattern matching a text of 1..max_length allowed characters, not all whitespace."""
    return rf"(?=[\s\S]*\S)[{allowed_characters}]{{1,{max_length}}}"


class Worker(ABC):
    """Base class of worker types. Subclasses set the class attributes and implement `send`."""

    #: The pydantic model of the channel's `params`. Use `extra="forbid"` so typos are errors.
    Params: ClassVar[type[BaseModel]] = NoParams
    #: The longest message the remote accepts, in characters.
    max_length: ClassVar[int] = 4096
    #: A regular-expression character class (without brackets) of what the remote accepts.
    allowed_characters: ClassVar[str] = DEFAULT_ALLOWED_CHARACTERS
    #: How many deliveries a worker process may hold at once. Fast local workers take many
    #: (fewer hand-overs), remote ones one (the lease clock runs while a delivery waits).
    prefetch: ClassVar[int] = 1
    #: Seconds a worker process may hold a delivery before it is handed out again.
    lease_seconds: ClassVar[float] = 120.0

    def __init__(self, channel: str, params: BaseModel) -> None:
        self.channel = channel
        self.params = params

    @classmethod
    def default_pattern(cls) -> str:
        """The pattern a message must fully match, unless the channel overrides it."""
        return build_pattern(cls.allowed_characters, cls.max_length)

    @classmethod
    def message_pattern(cls, params: BaseModel) -> str:
        """The default pattern of a channel with these params, unless the channel overrides it.
        Override when a parameter changes what the remote accepts (Telegram's `split_long`)."""
        return cls.default_pattern()

    @classmethod
    def check_message(cls, params: BaseModel, message: str) -> str | None:
        """An extra check of a message, beyond the pattern: None if fine, else the reason,
        shown to the client in the 422. Used when the pattern cannot say enough (SMS parts)."""
        return None

    @classmethod
    def recipients(cls, params: BaseModel) -> list[str]:
        """The recipients a job of this channel fans out to: one delivery each. A worker type
        without recipients (the channel is the destination) returns one empty string."""
        return [""]

    @classmethod
    def secrets(cls, params: BaseModel) -> list[str]:
        """The values to keep out of every error text and log line: by default each
        `SecretStr` parameter. Override to add secrets kept in plain fields."""
        return secret_values(params)

    @classmethod
    def channel_rate(cls, params: BaseModel) -> float | None:
        """Deliveries per second the whole channel may hand out, or None for no limit."""
        return None

    @classmethod
    def recipient_interval(cls, params: BaseModel, recipient: str) -> float:
        """Seconds that must pass between two deliveries to the same recipient (0: none)."""
        return 0.0

    @classmethod
    def rate_key(cls, params: BaseModel) -> str | None:
        """The remote budget this channel draws on (a bot, a provider account), or None when
        the channel is a budget of its own. Channels with the same key share one pacing (the
        smallest `channel_rate` among them, and each recipient's interval) and one cool-down
        after a 429. Build it with `hashed_rate_key`: keys are not secrets."""
        return None

    def open(self) -> None:  # noqa: B027 - a documented no-op hook
        """Called once in the worker process before the first `send` (open sessions here).
        An exception here is a start-up failure of the worker process."""

    def close(self) -> None:  # noqa: B027 - a documented no-op hook
        """Called once when the worker process ends normally."""

    @abstractmethod
    def send(self, delivery: Delivery) -> None:
        """Send one delivery. Return when delivered; raise a `DeliveryError` otherwise."""


def hashed_rate_key(kind: str, identity: str) -> str:
    """A rate key naming a remote account by a hash of what identifies it, which may be a
    secret (a bot token)."""
    return f"{kind}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a message pattern; it is applied with `fullmatch`."""
    return re.compile(pattern)

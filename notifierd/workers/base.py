"""The base class every worker type derives from.

A worker type declares its parameters as a pydantic model (`Params`; the class is generic in
it, `class TelegramWorker(Worker[TelegramParams])`, so that `self.params` and the classmethods'
`params` have that type), the text it accepts (any Unicode text without control characters, see
`message_text`, up to `max_length` counted as the remote counts: `check_message`), how a
channel fans a job out to recipients, and how fast it may send. One instance lives in each
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
from collections.abc import Callable, Hashable, Iterable
from typing import Annotated, Any, ClassVar, Generic

from pydantic import AfterValidator, BaseModel, ConfigDict
from typing_extensions import TypeVar

from notifierd.messages import Delivery
from notifierd.redaction import secret_values
from notifierd.workers.message_text import too_long


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


#: A parameter holding a regular expression: checked at config load, with a readable error.
RegexPattern = Annotated[str, AfterValidator(_valid_regex)]


def repeated(items: Iterable[T], key: Callable[[T], Hashable] | None = None) -> T | None:
    """The first item of `items` that an earlier one equals (by `key`), or None: for the
    parameters that list recipients, each of which must be listed once."""
    seen: set[Hashable] = set()
    for item in items:
        identity = item if key is None else key(item)
        if identity in seen:
            return item
        seen.add(identity)
    return None


class NoParams(BaseModel):
    """Parameters of a worker type that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


T = TypeVar("T")
#: A worker type's params model. A bare `Worker` (a caller holding any worker type, a plugin
#: that does not say) is `Worker[Any]`.
P = TypeVar("P", bound=BaseModel, default=Any)


class Worker(ABC, Generic[P]):
    """Base class of worker types. Subclasses name their params model as the type argument
    (`Worker[TelegramParams]`), set the class attributes and implement `send`. The core calls
    each classmethod with an instance of `Params`, validated at config load."""

    #: The pydantic model of the channel's `params`. Use `extra="forbid"` so typos are errors.
    Params: ClassVar[type[BaseModel]] = NoParams
    #: The longest message the remote accepts, in characters (code points); None: no limit but
    #: the server's `max_body_size`. A remote that counts otherwise overrides `check_message`.
    max_length: ClassVar[int | None] = 4096
    #: How many deliveries a worker process may hold at once. Fast local workers take many
    #: (fewer hand-overs), remote ones one (the lease clock runs while a delivery waits).
    prefetch: ClassVar[int] = 1
    #: Seconds a worker process may hold a delivery before it is handed out again.
    lease_seconds: ClassVar[float] = 120.0

    def __init__(self, channel: str, params: P) -> None:
        self.channel = channel
        self.params: P = params

    @classmethod
    def length_limit(cls, params: P) -> int | None:
        """The longest message a channel with these params accepts, in characters. Override
        when a parameter changes it (Telegram's `split_long`)."""
        return cls.max_length

    @classmethod
    def check_message(cls, params: P, message: str) -> str | None:
        """The remote's rules for a message whose characters passed (`message_text`): None if
        fine, else the reason, shown to the client in the 422. By default the length in
        characters against `length_limit`. Override to check as the remote does: a remote that
        counts the length after parsing markup, or in SMS parts, checks that and words a length
        refusal with `message_text.too_long`. Runs on every request: keep it cheap."""
        limit = cls.length_limit(params)
        if limit is not None and len(message) > limit:
            return too_long(len(message), limit)
        return None

    @classmethod
    def literal_text(cls, params: P, text: str) -> str:
        """`text` written so that the remote shows each of its characters as it is: escaped
        for a channel whose messages are markup. The webhook receivers' built-in text is plain
        and goes through this. By default `text` unchanged."""
        return text

    @classmethod
    def recipients(cls, params: P) -> list[str]:
        """The recipients a job of this channel fans out to: one delivery each. A worker type
        without recipients (the channel is the destination) returns one empty string."""
        return [""]

    @classmethod
    def secrets(cls, params: P) -> list[str]:
        """The values to keep out of every error text and log line: by default each
        `SecretStr` parameter. Override to add secrets kept in plain fields."""
        return secret_values(params)

    @classmethod
    def channel_rate(cls, params: P) -> float | None:
        """Deliveries per second the whole channel may hand out, or None for no limit."""
        return None

    @classmethod
    def recipient_interval(cls, params: P, recipient: str) -> float:
        """Seconds that must pass between two deliveries to the same recipient (0: none)."""
        return 0.0

    @classmethod
    def rate_key(cls, params: P) -> str | None:
        """The remote budget this channel draws on (a bot, a provider account), or None when
        the channel is a budget of its own. Channels with the same key share one pacing (the
        smallest `channel_rate` among them, and each recipient's interval) and one cool-down
        after a 429. Build it with `hashed_rate_key`: keys are not secrets."""
        return None

    def open(self) -> None:
        """Called once in the worker process before the first `send` (open sessions here).
        An exception here is a start-up failure of the worker process."""

    def close(self) -> None:
        """Called once when the worker process ends normally."""

    @abstractmethod
    def send(self, delivery: Delivery) -> None:
        """Send one delivery. Return when delivered; raise a `DeliveryError` otherwise."""


def hashed_rate_key(kind: str, identity: str) -> str:
    """A rate key naming a remote account by a hash of what identifies it, which may be a
    secret (a bot token)."""
    return f"{kind}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"

"""The `telegram` worker: each delivery a Bot API `sendMessage` to one chat.

- `worker`: the worker class: pacing, split messages, chats that moved, the requests;
- `params`: the channel's `params` and the chat ids they name;
- `parts`: the messages a text becomes, and the intake checks of its markup and length;
- `answers`: what the Bot API's answers mean for a delivery.
"""

from notifierd.workers.telegram.params import TelegramParams
from notifierd.workers.telegram.parts import split_text
from notifierd.workers.telegram.worker import TelegramWorker

__all__ = ["TelegramParams", "TelegramWorker", "split_text"]

"""Finds worker types: by name in the entry-point group `notifierd.workers` (built-ins are
registered there too, in pyproject.toml), or by an explicit `package.module:ClassName`."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from notifierd.workers.base import Worker

ENTRY_POINT_GROUP = "notifierd.workers"
# The built-ins are registered as entry points in pyproject.toml; this map only serves a
# checkout that runs without being installed (bin/notifierd), where no entry point exists.
BUILTIN_WORKERS = {
    "discord": "notifierd.workers.discord:DiscordWorker",
    "email": "notifierd.workers.email:EmailWorker",
    "gotify": "notifierd.workers.gotify:GotifyWorker",
    "matrix": "notifierd.workers.matrix:MatrixWorker",
    "mattermost": "notifierd.workers.mattermost:MattermostWorker",
    "ntfy": "notifierd.workers.ntfy:NtfyWorker",
    "null": "notifierd.workers.null:NullWorker",
    "pushover": "notifierd.workers.pushover:PushoverWorker",
    "rocketchat": "notifierd.workers.rocketchat:RocketChatWorker",
    "slack": "notifierd.workers.slack:SlackWorker",
    "sms": "notifierd.workers.sms:SmsWorker",
    "teams": "notifierd.workers.teams:TeamsWorker",
    "telegram": "notifierd.workers.telegram:TelegramWorker",
    "webhook": "notifierd.workers.webhook:WebhookWorker",
}


class UnknownWorker(LookupError):
    """No worker type of that name is installed; the message lists the installed ones."""


def installed_worker_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(BUILTIN_WORKERS))


def load_worker_class(name: str) -> type[Worker]:
    """The worker class registered as `name`, or named by `module:Class`."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise UnknownWorker(f"cannot import worker {name!r}: {exc}") from exc
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if matches:
            obj = matches[0].load()
        elif name in BUILTIN_WORKERS:
            return load_worker_class(BUILTIN_WORKERS[name])
        else:
            installed = ", ".join(installed_worker_names())
            raise UnknownWorker(f"unknown worker type {name!r}; installed: {installed}")
    if not (isinstance(obj, type) and issubclass(obj, Worker)):
        raise UnknownWorker(f"worker {name!r} is not a subclass of notifierd.workers.base.Worker")
    return obj

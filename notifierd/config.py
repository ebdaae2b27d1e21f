"""The channel file: YAML read once at start-up into `Channel` objects.

Every error names the file and the key path (`etc/channels.yaml: channels.alerts.retry.delay:
...`), and all errors of a file are reported together, so one run shows everything to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifierd.errors import ConfigError
from notifierd.hooks.templates import HookTemplate, compile_templates
from notifierd.retry import RetryPolicy
from notifierd.workers.base import RegexPattern, Worker
from notifierd.workers.message_text import character_refusal
from notifierd.workers.registry import UnknownWorker, load_worker_class

CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class HookTemplateSources(BaseModel):
    """A channel's Jinja2 templates for the webhook receivers (notifierd.hooks.templates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertmanager: str | None = None
    grafana: str | None = None


class ChannelSpec(BaseModel):
    """One entry under `channels:` as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    worker: str = Field(min_length=1)
    processes: int = Field(1, ge=1, le=64)
    ttl: int | None = Field(None, gt=0, description="seconds; default: the daemon's default_ttl")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    message_pattern: RegexPattern | None = None
    lease: float | None = Field(None, gt=0, description="seconds a worker may hold a delivery")
    prefetch: int | None = Field(None, ge=1, le=10000)
    params: dict[str, Any] = Field(default_factory=dict)
    templates: HookTemplateSources = Field(default_factory=HookTemplateSources)


class ChannelFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, Any]


@dataclass(frozen=True)
class Channel:
    """A configured virtual channel, everything resolved."""

    name: str
    worker_type: str
    worker_class: type[Worker]
    params: BaseModel
    processes: int
    retry: RetryPolicy
    ttl: int
    #: The channel's own `message_pattern`; None: the default character rule (message_text).
    pattern: re.Pattern[str] | None
    lease: float
    prefetch: int
    recipients: tuple[str, ...]
    #: The channel's own text for each webhook (`alertmanager`, `grafana`) that has one.
    templates: Mapping[str, HookTemplate] = field(default_factory=dict)

    def check_message(self, message: str) -> str | None:
        """None if `message` is acceptable on this channel, else the reason."""
        reason = character_refusal(message, self.pattern)
        if reason is not None:
            return reason
        return self.worker_class.check_message(self.params, message)


def load_channels(path: Path, default_ttl: int) -> dict[str, Channel]:
    """Read and check the channel file. Raises `ConfigError` listing every problem found."""
    unset: list[tuple[str, str]] = []
    raw = _expand_env(path, _read_yaml(path), "", unset)
    problems = [problem for _, problem in unset]
    try:
        document = ChannelFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(path, "", exc)) from None
    if not document.channels:
        raise ConfigError(f"{path}: channels: no channel is defined")
    channels: dict[str, Channel] = {}
    for name, entry in document.channels.items():
        key = f"channels.{name}"
        if any(where == key or where.startswith(f"{key}.") for where, _ in unset):
            continue  # already reported: a variable it needs is not set
        try:
            if not isinstance(name, str) or CHANNEL_NAME.fullmatch(name) is None:
                raise ConfigError(
                    f"{path}: {key}: a channel name is 1-64 letters, digits, '_', '.', '-'"
                )
            channels[name] = _build_channel(path, key, name, entry, default_ttl)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return channels


def _build_channel(path: Path, key: str, name: str, entry: Any, default_ttl: int) -> Channel:
    try:
        spec = ChannelSpec.model_validate(entry)
    except ValidationError as exc:
        raise ConfigError(_format(path, key, exc)) from None
    try:
        worker_class = load_worker_class(spec.worker)
    except UnknownWorker as exc:
        raise ConfigError(f"{path}: {key}.worker: {exc}") from None
    try:
        params = worker_class.Params.model_validate(spec.params)
    except ValidationError as exc:
        raise ConfigError(_format(path, f"{key}.params", exc)) from None
    recipients = tuple(worker_class.recipients(params))
    if not recipients:
        raise ConfigError(f"{path}: {key}.params: the channel has no recipient")
    templates = compile_templates(
        f"{path}: {key}",
        spec.templates.model_dump(exclude_none=True),
        partial(worker_class.literal_text, params),
    )
    return Channel(
        name=name,
        worker_type=spec.worker,
        worker_class=worker_class,
        params=params,
        processes=spec.processes,
        retry=spec.retry,
        ttl=spec.ttl or default_ttl,
        pattern=re.compile(spec.message_pattern) if spec.message_pattern else None,
        lease=spec.lease or worker_class.lease_seconds,
        prefetch=spec.prefetch or worker_class.prefetch,
        recipients=recipients,
        templates=templates,
    )


def _format(path: Path, prefix: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        key = ".".join(part for part in (prefix, location) if part) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path}: {key}: {message}")
    return "\n".join(lines)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges; keys written here override the merged ones
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a key must be a plain value, not a list or a mapping",
                key_node.start_mark,
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: the file must be a mapping with a 'channels' key")
    return document


def _expand_env(path: Path, node: Any, key: str, unset: list[tuple[str, str]]) -> Any:
    """Replace `${VAR}` in every string with the environment's value (`$$` is a literal `$`).
    A variable that is not set is added to `unset` as (key path, problem)."""
    if isinstance(node, Mapping):
        return {
            k: _expand_env(path, v, f"{key}.{k}" if key else str(k), unset) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_env(path, v, f"{key}.{i}", unset) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable is None:
                return "$"
            value = os.environ.get(variable)
            if value is None:
                unset.append((key, f"{path}: {key}: environment variable {variable} is not set"))
                return ""
            return value

        return ENV_REFERENCE.sub(substitute, node)
    return node

"""The webhook receivers' requests: a monitoring system's payload made into a send request.

`POST /api/hooks/alertmanager/{channel}` and `POST /api/hooks/grafana/{channel}` go through the
same handler as `/api/send` (auth, body limits, maintenance, durability); what differs is how
the body becomes the message, which is here: the payload is checked (a 422 names the wrong
field), made into the channel's template's text or the built-in one, and fitted into the
channel's length limit by leaving alerts out (never a 422 for length). `delay` may be given in
the query string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from notifierd.api.validation import FieldError, SendRequest, validate_send
from notifierd.config import Channel
from notifierd.hooks.payloads import AlertGroup, GrafanaAlertGroup, parse_payload
from notifierd.hooks.templates import HookTemplate, RenderError
from notifierd.hooks.text import alert_group_text, cut, fit

#: A route's way from the request's fields to a send request (raises `FieldError`).
Validator = Callable[[Mapping[str, Any], Mapping[str, Any], Channel, int], SendRequest]


def validate_alertmanager(
    body: Mapping[str, Any], query: Mapping[str, Any], channel: Channel, max_delay: int
) -> SendRequest:
    group = parse_payload(AlertGroup, dict(body))
    return validate_send(
        {"message": message(channel, "alertmanager", group)}, query, channel, max_delay
    )


def validate_grafana(
    body: Mapping[str, Any], query: Mapping[str, Any], channel: Channel, max_delay: int
) -> SendRequest:
    group = parse_payload(GrafanaAlertGroup, dict(body))
    return validate_send({"message": message(channel, "grafana", group)}, query, channel, max_delay)


def message(channel: Channel, hook: str, group: AlertGroup) -> str:
    """The text `channel` sends for `group`, within its limits. Raises `FieldError`."""
    template = channel.templates.get(hook)
    if template is not None:
        return _templated(channel, template, group)
    return _built_in(channel, group)


def _built_in(channel: Channel, group: AlertGroup) -> str:
    literal = partial(channel.worker_class.literal_text, channel.params)

    def build(shown: int, omitted: int) -> str:
        return literal(alert_group_text(group, shown))

    text, reason = fit(build, len(group.alerts), channel.check_message)
    if text is not None:
        return text
    # Even the header alone is too long (an SMS channel of one part and a long alertname).
    short = cut(alert_group_text(group, 0), lambda plain: channel.check_message(literal(plain)))
    if short is None:
        raise FieldError("message_rejected", f"the alert's text: {reason}", "message")
    return literal(short)


def _templated(channel: Channel, template: HookTemplate, group: AlertGroup) -> str:
    fields = group.model_dump()
    alerts = fields["alerts"]

    def build(shown: int, omitted: int) -> str:
        context = fields | {"alerts": alerts[:shown], "omitted": omitted, "channel": channel.name}
        try:
            return template.render(context)
        except RenderError as exc:
            raise FieldError("template_error", str(exc), template.key) from None

    text, reason = fit(build, len(alerts), channel.check_message)
    if text is None:
        raise FieldError(
            "message_rejected",
            f"the text of the channel's template {template.key}, even without any alert: {reason}",
            template.key,
        )
    return text

"""The payloads monitoring systems post, as pydantic models.

Only what the text needs is required (`status`, `alerts`); every other field has a default and
unknown fields are ignored, so a newer sender's additions do not break the receiver.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifierd.api.validation import FieldError


class Alert(BaseModel):
    """One alert: Alertmanager's and Grafana's share this shape (Grafana adds links)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""  # noqa: N815 - the sender's spelling, used as is in templates
    endsAt: str = ""  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""
    silenceURL: str = ""  # noqa: N815
    dashboardURL: str = ""  # noqa: N815
    panelURL: str = ""  # noqa: N815
    valueString: str = ""  # noqa: N815


class AlertGroup(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str
    alerts: list[Alert]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815


class GrafanaAlertGroup(AlertGroup):
    """Grafana's unified-alerting webhook payload: Alertmanager's, plus its own summary."""

    title: str = ""
    state: str = ""
    message: str = ""
    orgId: int = 0  # noqa: N815


M = TypeVar("M", bound=BaseModel)


def parse_payload(model: type[M], body: dict[str, Any]) -> M:
    """`body` read as `model`. Raises `FieldError` naming the first wrong field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise FieldError("invalid_payload", f"{field}: {error['msg']}", field) from None

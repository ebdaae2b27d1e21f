"""The built-in text of an alert group, and fitting a text into a channel's length limit.

The text is plain: one header line (how many alerts fire and how many are resolved, the group's
alertname and severity), then a paragraph per alert (its summary and description, or its labels
when it has neither, and its links). The channel's worker escapes it for the channel's markup
(`Worker.literal_text`), so an alert's `<` or `*` reaches a Telegram channel in `html` or
`markdownv2` as the character itself.

A group too long for the channel keeps as many alerts as fit and ends with a note of how many
were left out: a monitoring system that gets a 422 cannot shorten its own payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from notifierd.hooks.payloads import Alert, AlertGroup, GrafanaAlertGroup

#: Control characters (but \n and \t) and lone surrogates: an alert's label may hold any of
#: them, and no channel accepts them.
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
#: The longest single value (a label, a summary) shown: one verbose alert must not leave no
#: room for the others.
MAX_VALUE = 1000
#: ASCII: "…" is not in the GSM-7 alphabet and would make an SMS count in UCS-2, at 70 a part.
ELLIPSIS = "..."

#: A candidate message built from the first `shown` alerts, `omitted` left out.
Build = Callable[[int, int], str]
#: None when the channel accepts the text, else the reason.
Check = Callable[[str], str | None]


def clean(value: str, limit: int = MAX_VALUE) -> str:
    value = _NOT_TEXT.sub(" ", value)
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


def omitted_note(omitted: int) -> str:
    return f"{ELLIPSIS} and {omitted} more alert{'s' if omitted != 1 else ''}"


def alert_group_text(group: AlertGroup, shown: int) -> str:
    """The built-in text with the first `shown` alerts of `group`."""
    lines = [_header(group)]
    if isinstance(group, GrafanaAlertGroup) and group.title:
        lines.append(clean(group.title))
    for alert in group.alerts[:shown]:
        lines.append("")
        lines.extend(_alert_lines(alert, group))
    omitted = len(group.alerts) - shown + group.truncatedAlerts
    if omitted > 0:
        lines.extend(("", omitted_note(omitted)))
    if group.externalURL:
        lines.extend(("", clean(group.externalURL)))
    return "\n".join(lines)


def _header(group: AlertGroup) -> str:
    firing = sum(1 for alert in group.alerts if alert.status == "firing")
    resolved = len(group.alerts) - firing
    counts = ", ".join(
        f"{label}:{count}" for label, count in (("FIRING", firing), ("RESOLVED", resolved)) if count
    )
    header = f"[{counts or group.status.upper()}]"
    labels = group.commonLabels | group.groupLabels
    if "alertname" in labels:
        header += f" {labels['alertname']}"
    if "severity" in labels:
        header += f" ({labels['severity']})"
    return clean(header)


def _alert_lines(alert: Alert, group: AlertGroup) -> list[str]:
    labels = alert.labels
    title = f"{alert.status.upper()}: {labels.get('alertname', '')}".rstrip(": ")
    if "severity" in labels and "severity" not in group.commonLabels:
        title += f" ({labels['severity']})"
    lines = [clean(title)]
    notes = [
        alert.annotations[key] for key in ("summary", "description") if key in alert.annotations
    ]
    if notes:
        lines.extend(clean(note) for note in notes)
    else:
        shown = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
        if shown:
            lines.append(clean(", ".join(f"{k}={v}" for k, v in sorted(shown.items()))))
    if alert.valueString:
        lines.append(clean(alert.valueString))
    for link in (alert.generatorURL, alert.dashboardURL, alert.panelURL, alert.silenceURL):
        if link:
            lines.append(clean(link))
    return lines


#: How many alerts the first try holds: most groups are smaller, and are built just once.
FIRST_TRY = 32


def fit(build: Build, total: int, check: Check) -> tuple[str | None, str | None]:
    """The text with the most alerts (of `total`) that `check` accepts, as (text, None); or
    (None, reason) when even the text without any alert is refused.

    The count doubles from `FIRST_TRY` until a text is refused, then is bisected: every text
    built is at most about twice the limit, so a group of thousands of alerts costs a few
    texts of the channel's size, never a check of the whole group's (seconds of markup parsing
    on the event loop)."""
    good, bad = -1, total + 1  # the most alerts known to fit, the fewest known not to
    best: str | None = None
    shown = min(total, FIRST_TRY)
    while bad - good > 1:
        candidate = build(shown, total - shown)
        if check(candidate) is None:
            good, best = shown, candidate
        else:
            bad = shown
        shown = min(total, shown * 2) if bad > total else (good + bad) // 2
    if best is None:
        return None, check(build(0, total))
    return best, None


def cut(text: str, check: Check) -> str | None:
    """The longest prefix of `text`, ended by an ellipsis, that `check` accepts; None if none."""
    low, high, best = 1, len(text) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = text[:middle].rstrip() + ELLIPSIS
        if check(candidate) is None:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best

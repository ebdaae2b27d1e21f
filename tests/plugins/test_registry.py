"""Worker types are found through the `notifierd.workers` entry-point group."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifierd.workers.email import EmailWorker
from notifierd.workers.null import NullWorker
from notifierd.workers.registry import UnknownWorker, installed_worker_names, load_worker_class
from notifierd.workers.sms import SmsWorker
from tests.plugins.distinfo import declared_workers, write_dist_info


@pytest.fixture
def notifierd_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """notifierd's own entry points, as pyproject.toml declares them, visible on sys.path."""
    write_dist_info(tmp_path, "notifierd", "0.1.0", declared_workers())
    monkeypatch.syspath_prepend(str(tmp_path))


def test_builtins_are_declared_sorted() -> None:
    names = list(declared_workers())
    assert {"email", "null", "sms"} <= set(names)
    assert names == sorted(names)


@pytest.mark.usefixtures("notifierd_installed")
def test_builtins_load_by_name() -> None:
    assert load_worker_class("sms") is SmsWorker
    assert load_worker_class("email") is EmailWorker
    assert load_worker_class("null") is NullWorker


@pytest.mark.usefixtures("notifierd_installed")
def test_unknown_worker_lists_the_installed_ones() -> None:
    installed = installed_worker_names()
    assert {"email", "null", "sms"} <= set(installed)
    with pytest.raises(UnknownWorker) as caught:
        load_worker_class("nope")
    assert str(caught.value) == f"unknown worker type 'nope'; installed: {', '.join(installed)}"


def test_a_worker_can_be_named_by_module_and_class() -> None:
    assert load_worker_class("notifierd.workers.sms:SmsWorker") is SmsWorker
    with pytest.raises(UnknownWorker, match="cannot import worker"):
        load_worker_class("notifierd.workers.sms:Nope")
    with pytest.raises(UnknownWorker, match="not a subclass"):
        load_worker_class("notifierd.workers.sms:SmsParams")

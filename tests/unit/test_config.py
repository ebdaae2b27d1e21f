"""The channel file (DESIGN §6), the retry policy, and `notifierd check-config`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notifierd.cli.daemon import main as daemon_main
from notifierd.config import Channel, load_channels
from notifierd.errors import EXIT_CONFIG, ConfigError
from notifierd.retry import RetryPolicy
from notifierd.settings import Settings
from notifierd.workers.null import NullParams, NullWorker

from .conftest import DEFAULT_TTL, WriteYaml

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "channels.yaml"


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_channels(path, DEFAULT_TTL)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_example_file_loads() -> None:
    channels = load_channels(EXAMPLE, DEFAULT_TTL)
    assert "devnull" in channels
    devnull = channels["devnull"]
    assert devnull.worker_class is NullWorker
    assert devnull.ttl == 3600
    assert devnull.retry == RetryPolicy(delay=5, backoff=2, max_delay=300, max_attempts=5)


def test_defaults_are_filled_in(write_yaml: WriteYaml) -> None:
    channel = load_channels(write_yaml('channels: {x: {worker: "null"}}'), 1234)["x"]
    assert channel.name == "x"
    assert channel.worker_type == "null"
    assert channel.processes == 1
    assert channel.ttl == 1234
    assert channel.retry == RetryPolicy()
    assert channel.lease == NullWorker.lease_seconds
    assert channel.prefetch == NullWorker.prefetch
    assert channel.recipients == ("",)
    assert channel.params == NullParams()


def test_every_key_is_read(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        channels:
          full.name-1_x:
            worker: "null"
            processes: 3
            ttl: 60
            retry: {delay: 2, backoff: 3, max_delay: 50, max_attempts: 4, jitter: 0}
            message_pattern: "[0-9]+"
            lease: 7.5
            prefetch: 9
            params: {recipients: [r1, r2]}
        """
    )
    channel = load_channels(path, DEFAULT_TTL)["full.name-1_x"]
    assert channel.processes == 3
    assert channel.ttl == 60
    assert channel.retry == RetryPolicy(delay=2, backoff=3, max_delay=50, max_attempts=4, jitter=0)
    assert channel.pattern is not None
    assert channel.pattern.pattern == "[0-9]+"
    assert (channel.lease, channel.prefetch) == (7.5, 9)
    assert channel.recipients == ("r1", "r2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('channels: {x: {worker: "null"}}\nbogus: 1\n', "bogus: unknown key"),
        ('channels: {x: {worker: "null", retires: 3}}', "channels.x.retires: unknown key"),
        ('channels: {x: {worker: "null", processes: many}}', "channels.x.processes:"),
        ('channels: {x: {worker: "null", processes: 0}}', "channels.x.processes:"),
        ('channels: {x: {worker: "null", retry: {delay: -1}}}', "channels.x.retry.delay:"),
        ('channels: {x: {worker: "null", retry: {tries: 1}}}', "channels.x.retry.tries: unknown"),
        ('channels: {x: {worker: "null", ttl: 0}}', "channels.x.ttl:"),
        ('channels: {x: {worker: "null", params: {bogus: 1}}}', "channels.x.params.bogus: unknown"),
        ('channels: {x: {worker: "null", params: {recipients: []}}}', "channels.x.params"),
        ('channels: {x: {worker: "null", message_pattern: "[a-"}}', "channels.x.message_pattern:"),
        ("channels: {x: {processes: 1}}", "channels.x.worker:"),
        ('channels: {"bad name": {worker: "null"}}', "channels.bad name:"),
        ('channels: {"": {worker: "null"}}', "channels.:"),
        ("channels: {}", "channels: no channel"),
        ("channels:\n", "channels"),
        ("channels: [a, b]", "channels"),
        ("- a\n- b\n", "mapping"),
        ("just a string", "mapping"),
        ("", "mapping"),
        ("channels: {x: [unclosed", "invalid YAML"),
        ("channels:\n  x: {worker: a}\n  x: {worker: b}\n", "duplicate key 'x'"),
    ],
)
def test_errors_name_file_and_key(write_yaml: WriteYaml, text: str, expected: str) -> None:
    message = config_error(write_yaml(text))
    assert expected in message


def test_unknown_worker_lists_installed(write_yaml: WriteYaml) -> None:
    message = config_error(write_yaml('channels: {x: {worker: "carrier-pigeon"}}'))
    assert "channels.x.worker" in message
    assert "carrier-pigeon" in message
    assert re.search(r"installed: .*\bnull\b", message)


def test_worker_by_module_path(write_yaml: WriteYaml) -> None:
    path = write_yaml('channels: {x: {worker: "notifierd.workers.null:NullWorker"}}')
    assert load_channels(path, DEFAULT_TTL)["x"].worker_class is NullWorker


@pytest.mark.parametrize(
    "worker", ["notifierd.workers.null:Nope", "no.such.module:X", "notifierd.config:RetryPolicy"]
)
def test_bad_worker_module_path(write_yaml: WriteYaml, worker: str) -> None:
    message = config_error(write_yaml(f'channels: {{x: {{worker: "{worker}"}}}}'))
    assert "channels.x.worker" in message


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.yaml")
    assert "no such file" in message


def test_duplicate_nested_key(write_yaml: WriteYaml) -> None:
    message = config_error(
        write_yaml('channels:\n  x:\n    worker: "null"\n    ttl: 5\n    ttl: 6\n')
    )
    assert "duplicate key 'ttl'" in message


def test_several_errors_reported_together(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        channels:
          a: {worker: "null", retires: 1}
          b: {worker: nope}
          "bad name": {worker: "null"}
          c: {worker: "null", params: {bogus: 1}}
          ok: {worker: "null"}
        """
    )
    message = config_error(path)
    assert "channels.a.retires" in message
    assert "channels.b.worker" in message
    assert "channels.bad name" in message
    assert "channels.c.params.bogus" in message
    assert "channels.ok" not in message
    assert all(line.startswith(f"{path}: ") for line in message.splitlines())


def test_unset_variable_named_with_key_path(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIERD_TEST_UNSET", raising=False)
    path = write_yaml(
        'channels: {x: {worker: "null", params: {recipients: [a, "${NOTIFIERD_TEST_UNSET}"]}}}'
    )
    message = config_error(path)
    assert "NOTIFIERD_TEST_UNSET" in message
    assert "channels.x.params.recipients.1" in message


def test_unset_variables_reported_with_other_errors(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIERD_TEST_UNSET_A", raising=False)
    monkeypatch.delenv("NOTIFIERD_TEST_UNSET_B", raising=False)
    path = write_yaml(
        """
        channels:
          a: {worker: "null", params: {recipients: ["${NOTIFIERD_TEST_UNSET_A}"]}}
          b: {worker: "null", params: {recipients: ["${NOTIFIERD_TEST_UNSET_B}"]}}
          c: {worker: "nope"}
        """
    )
    message = config_error(path)
    assert "NOTIFIERD_TEST_UNSET_A" in message
    assert "NOTIFIERD_TEST_UNSET_B" in message
    assert "channels.c.worker" in message


def test_variables_expanded(write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIERD_TEST_CHAT", "chat-42")
    monkeypatch.setenv("NOTIFIERD_TEST_EMPTY", "")
    path = write_yaml(
        """
        channels:
          x:
            worker: "null"
            params:
              recipients:
                - "${NOTIFIERD_TEST_CHAT}"
                - "pre-${NOTIFIERD_TEST_CHAT}-${NOTIFIERD_TEST_CHAT}"
                - "cost $$5 and $$${NOTIFIERD_TEST_CHAT}"
                - "a${NOTIFIERD_TEST_EMPTY}b"
                - "$$${NOTIFIERD_TEST_UNSET_TOO"
                - "$HOME and $"
        """
    )
    assert load_channels(path, DEFAULT_TTL)["x"].recipients == (
        "chat-42",
        "pre-chat-42-chat-42",
        "cost $5 and $chat-42",
        "ab",
        "$${NOTIFIERD_TEST_UNSET_TOO",  # `$$` is `$`; an unclosed `${` stays as it is
        "$HOME and $",
    )


def test_variable_value_is_not_expanded_again(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIERD_TEST_TRICKY", "${NOTIFIERD_TEST_NEVER_SET}$$")
    path = write_yaml(
        'channels: {x: {worker: "null", params: {recipients: ["${NOTIFIERD_TEST_TRICKY}"]}}}'
    )
    assert load_channels(path, DEFAULT_TTL)["x"].recipients == ("${NOTIFIERD_TEST_NEVER_SET}$$",)


def test_invalid_fault_regex_is_a_config_error(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        'channels: {x: {worker: "null", params: {faults: [{kind: temporary, match: "("}]}}}'
    )
    message = config_error(path)
    assert "channels.x.params.faults.0.match" in message


def test_unhashable_key_is_a_config_error(write_yaml: WriteYaml) -> None:
    config_error(write_yaml("channels:\n  ? [a, b]\n  : {worker: 'null'}\n"))


def test_yaml_merge_keys(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        channels:
          a: &common {worker: "null", ttl: 60}
          b:
            <<: *common
            processes: 2
        """
    )
    channels = load_channels(path, DEFAULT_TTL)
    assert (channels["b"].ttl, channels["b"].processes) == (60, 2)


def test_yaml_alias_without_merge(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        channels:
          a: {worker: "null", retry: &retry {delay: 3, max_attempts: 2}}
          b: {worker: "null", retry: *retry}
        """
    )
    channels = load_channels(path, DEFAULT_TTL)
    assert channels["a"].retry == channels["b"].retry == RetryPolicy(delay=3, max_attempts=2)


def test_null_worker_faults_validated(write_yaml: WriteYaml) -> None:
    message = config_error(
        write_yaml('channels: {x: {worker: "null", params: {faults: [{kind: explode}]}}}')
    )
    assert "channels.x.params.faults.0.kind" in message


# -- RetryPolicy --------------------------------------------------------------------------------


def test_fixed_delay() -> None:
    policy = RetryPolicy(delay=10, backoff=1, jitter=0)
    assert [policy.delay_after(n, 0.0) for n in (1, 2, 5, 50)] == [10, 10, 10, 10]


def test_backoff_and_cap() -> None:
    policy = RetryPolicy(delay=2, backoff=3, max_delay=100, jitter=0)
    assert [policy.delay_after(n, 0.0) for n in (1, 2, 3, 4, 5, 6)] == [2, 6, 18, 54, 100, 100]


@pytest.mark.parametrize("spread", [-1.0, -0.5, 0.0, 0.5, 1.0])
def test_jitter_bounds(spread: float) -> None:
    policy = RetryPolicy(delay=100, backoff=1, jitter=0.2)
    value = policy.delay_after(1, spread)
    assert value == pytest.approx(100 * (1 + 0.2 * spread))
    assert 80 <= value <= 120


def test_full_jitter_never_negative() -> None:
    assert RetryPolicy(delay=5, jitter=1).delay_after(1, -1.0) == 0.0


def test_jitter_applies_after_cap() -> None:
    policy = RetryPolicy(delay=10, backoff=2, max_delay=20, jitter=0.5)
    assert policy.delay_after(10, 1.0) == pytest.approx(30)
    assert policy.delay_after(10, -1.0) == pytest.approx(10)


def test_backoff_does_not_overflow() -> None:
    policy = RetryPolicy(delay=1, backoff=2, max_delay=600, max_attempts=5000, jitter=0)
    assert policy.delay_after(1100, 0.0) == 600


@pytest.mark.parametrize(
    "fields",
    [
        {"delay": 0},
        {"backoff": 0.5},
        {"max_delay": 0},
        {"max_attempts": 0},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"delay": "x"},
        {"bogus": 1},
    ],
)
def test_retry_policy_rejects(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        RetryPolicy.model_validate(fields)


# -- Channel.check_message ----------------------------------------------------------------------


UNICODE_ALERT = "🔥 disk full ✅ → ≥ 90% 250µs Ωμέγα 磁盘已满"


def test_check_message_default_rule_takes_any_text(null_channels: dict[str, Channel]) -> None:
    devnull = null_channels["devnull"]
    for good in (
        "Hello",
        "Привет, мир!",
        "a\nb\r\nc",
        "col\tcol",
        "№5 — «ok» … €10",
        UNICODE_ALERT,
        "👩\u200d💻 at work",  # an emoji sequence joined by U+200D (a format character)
        "x" * 4096,
        " a ",
    ):
        assert devnull.check_message(good) is None, good


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ("", "must not be blank"),
        (" \n\t", "must not be blank"),
        ("bell\x07", "the control character U+0007 at position 5"),
        ("a\x00b", "the control character U+0000 at position 2"),
        ("🔥\x1b[31m", "U+001B at position 2"),  # an emoji is one character
        ("del\x7f", "U+007F at position 4"),
        ("c1\x85", "U+0085 at position 3"),
        ("over\rwrite", "a carriage return not followed by a line feed, U+000D at position 5"),
        ("half \ud83d", "an unpaired surrogate, U+D83D at position 6"),
    ],
)
def test_check_message_default_rule_refusals(
    null_channels: dict[str, Channel], message: str, fragment: str
) -> None:
    reason = null_channels["devnull"].check_message(message)
    assert reason is not None
    assert fragment in reason


def test_check_message_length_in_characters(null_channels: dict[str, Channel]) -> None:
    devnull = null_channels["devnull"]
    assert devnull.check_message("🔥" * 4096) is None
    reason = devnull.check_message("x" * 5000)
    assert reason == "message is 5000 characters long; this channel accepts at most 4096"


def test_check_message_override(null_channels: dict[str, Channel]) -> None:
    lower = null_channels["lower"]
    assert lower.check_message("abc") is None
    for bad in ("ABC", "abc ", "a1", "", "abc\n", "🔥"):
        assert lower.check_message(bad) == (
            "message does not match this channel's message_pattern"
        ), bad


def test_message_pattern_replaces_the_characters_not_the_length(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "channels: {x: {worker: telegram, message_pattern: '[\\x00-\\x7f]+',"
        " params: {token: 't', chat_id: 1}}}"
    )
    channel = load_channels(path, DEFAULT_TTL)["x"]
    assert channel.check_message("bell\x07") is None  # the channel allowed it
    assert channel.check_message("не ASCII") is not None
    assert channel.check_message("x" * 4097) == (
        "message is 4097 characters long; this channel accepts at most 4096"
    )
    # No pattern lets through a string that is not text at all.
    assert "unpaired surrogate" in str(channel.check_message("x\udc00"))


def test_the_readme_recipe_takes_latin_and_cyrillic_only(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    [recipe] = re.findall(r"```yaml\n(channels:\n  pager:\n.*?)    params:", readme, re.S)
    path = tmp_path / "channels.yaml"
    # The same channel on the null worker, which needs no credentials.
    recipe = recipe.replace("worker: sms", 'worker: "null"')
    path.write_text(recipe + "    params: {recipients: [a]}\n", encoding="utf-8")
    channel = load_channels(path, DEFAULT_TTL)["pager"]
    assert channel.check_message("Сервер «db-1»: диск заполнен на 98 % — срочно!\r\nOK") is None
    assert channel.check_message("ёЁ №5, 100 ₽ / 1 €; [x] {y} ~z") is None
    for other in ("disk full 🔥", "Ωμέγα", "磁盘已满", "a\x1cb"):
        assert channel.check_message(other) is not None, other


def test_check_message_uses_fullmatch(write_yaml: WriteYaml) -> None:
    path = write_yaml('channels: {x: {worker: "null", message_pattern: "ab|abc"}}')
    channel = load_channels(path, DEFAULT_TTL)["x"]
    assert channel.check_message("abc") is None
    assert channel.check_message("abcd") is not None


# -- notifierd check-config ---------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"NOTIFIERD_{name.upper()}", raising=False)
    return monkeypatch


def test_check_config_ok(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon_main(["check-config", "--config", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert "devnull" in out
    assert err == ""


def test_check_config_from_env(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("NOTIFIERD_CONFIG", str(EXAMPLE))
    assert daemon_main(["check-config"]) == 0
    assert "devnull" in capsys.readouterr().out


def test_check_config_bad_file(
    clean_env: pytest.MonkeyPatch, write_yaml: WriteYaml, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml('channels: {x: {worker: "null", retires: 1}}')
    assert daemon_main(["check-config", "--config", str(path)]) == EXIT_CONFIG == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}: channels.x.retires: unknown key" in err


def test_check_config_missing_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon_main(["check-config", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value"),
    [("NOTIFIERD_PORT", "abc"), ("NOTIFIERD_PORT", "70000"), ("NOTIFIERD_LOG_LEVEL", "loud")],
)
def test_bad_setting_in_env(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    assert daemon_main(["check-config", "--config", str(EXAMPLE)]) == 2
    out, err = capsys.readouterr()
    assert name in err
    assert out == ""

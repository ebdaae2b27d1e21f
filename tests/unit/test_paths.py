"""Default paths, settings that turn paths absolute, and the unknown-variable check."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifierd.errors import ConfigError
from notifierd.paths import default_config, default_state_dir, socket_for
from notifierd.settings import Settings, read_tokens_file, unknown_variables


def test_root_gets_a_system_service_s_paths() -> None:
    environ = {"HOME": "/root", "XDG_STATE_HOME": "/elsewhere"}
    assert default_config(environ, root=True) == Path("/etc/notifierd/channels.yaml")
    assert default_state_dir(environ, root=True) == Path("/var/lib/notifierd")
    assert socket_for(Path("/var/lib/notifierd")) == Path("/run/notifierd/notifierd.sock")


def test_a_user_gets_xdg_paths() -> None:
    environ = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/st"}
    assert default_config(environ, root=False) == Path("/cfg/notifierd/channels.yaml")
    assert default_state_dir(environ, root=False) == Path("/st/notifierd")
    assert socket_for(Path("/st/notifierd")) == Path("/st/notifierd/notifierd.sock")


def test_xdg_falls_back_to_home_and_ignores_relative_values() -> None:
    environ = {"HOME": "/home/u", "XDG_CONFIG_HOME": "relative", "XDG_STATE_HOME": ""}
    assert default_config(environ, root=False) == Path("/home/u/.config/notifierd/channels.yaml")
    assert default_state_dir(environ, root=False) == Path("/home/u/.local/state/notifierd")


def test_an_explicit_state_dir_holds_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("notifierd.paths.is_root", lambda: True)
    assert Settings().socket_path == Path("/run/notifierd/notifierd.sock")
    assert Settings(state_dir="/srv/a").socket_path == Path("/srv/a/notifierd.sock")
    assert Settings(state_dir="/srv/a", socket="/x.sock").socket_path == Path("/x.sock")


def test_relative_paths_are_made_absolute_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(config="c.yaml", state_dir="st", log_file="l.log")
    assert settings.config == tmp_path / "c.yaml"
    assert settings.socket_path == tmp_path / "st" / "notifierd.sock"
    assert settings.log_file == tmp_path / "l.log"


def test_unknown_variables_name_the_closest_setting() -> None:
    environ = {
        "NOTIFIERD_API_TOKEN": "x",  # the typo of NOTIFIERD_API_TOKENS
        "NOTIFIERD_PORT": "1",
        "notifierd_host": "::1",  # read case-insensitively: a setting
        "NOTIFIERD_ZZZ": "x",
        "NOTIFIERD_BOT_TOKEN": "x",  # read by the channel file
        "PATH": "/bin",
    }
    assert unknown_variables(environ, referenced={"NOTIFIERD_BOT_TOKEN"}) == [
        ("NOTIFIERD_API_TOKEN", "NOTIFIERD_API_TOKENS"),
        ("NOTIFIERD_ZZZ", None),
    ]


def test_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# operators\nfirst-token-0123456789\n\n  second-token-0123456789  \n")
    assert read_tokens_file(path) == ("first-token-0123456789", "second-token-0123456789")
    settings = Settings(api_tokens="flag-token-0123456789", api_tokens_file=path)
    assert settings.with_tokens_file().api_tokens == (
        "flag-token-0123456789",
        "first-token-0123456789",
        "second-token-0123456789",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("good-token-0123456789\nshort-secret\n", "line 2: an API token must be at least 16"),
        ("# nothing but a comment\n", "holds no token"),
    ],
)
def test_a_bad_tokens_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        read_tokens_file(path)
    assert "short-secret" not in str(caught.value)


def test_a_missing_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_tokens_file(tmp_path / "none")

"""The control socket: `ControlServer`, the blocking client, and `notifierctl` without and with
a server."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifierd.cli.ctl import main as ctl_main
from notifierd.control.client import CommandFailed, NotRunning, call
from notifierd.control.server import Command, CommandError, ControlServer, SocketUnavailable
from notifierd.settings import Settings
from tests.harness import short_socket_dir


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    directory = short_socket_dir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def socket_path(socket_dir: Path) -> Path:
    return socket_dir / "ctl.sock"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"NOTIFIERD_{name.upper()}", raising=False)
    return monkeypatch


NODES = [
    {
        "node_id": "web-1:101:aaaaaaaa",
        "started_at": 1_700_000_000.0,
        "heartbeat_age": 0.42,
        "draining": False,
        "leader": True,
        "leases": 3,
        "rate_keys": ["telegram:0123abcd", "webhook:4567ef01"],
        "runtime": {"pid": 101, "version": "0.1.0", "channels": {"devnull": "running"}},
        "this_host": True,
    },
    {
        "node_id": "web-2:202:bbbbbbbb",
        "started_at": 1_700_000_060.0,
        "heartbeat_age": 1.5,
        "draining": True,
        "leader": False,
        "leases": 0,
        "rate_keys": [],
        "runtime": {},
        "this_host": False,
    },
]


class Commands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: Whether `status` shows the hosts (a daemon from before they existed does not).
        self.hosts = True

    def table(self) -> dict[str, Command]:
        return {
            "echo": self.echo,
            "refuse": self.refuse,
            "crash": self.crash,
            "status": self.status,
            "pause": self.pause,
            "nodes": self.nodes,
            "drain": self.drain,
            "undrain": self.undrain,
        }

    async def echo(self, args: dict[str, Any]) -> Any:
        self.calls.append(("echo", args))
        return {"you said": args}

    async def refuse(self, args: dict[str, Any]) -> Any:
        raise CommandError("there is no channel named 'x'")

    async def crash(self, args: dict[str, Any]) -> Any:
        raise RuntimeError("kaput")

    async def status(self, args: dict[str, Any]) -> Any:
        return {
            "paused": False,
            "stopping": False,
            "channels": [
                {
                    "name": "devnull",
                    "worker": "null",
                    "state": "running",
                    "processes": 1,
                    "pids": [101, 102],
                    "queued": 3,
                    "delayed": 0,
                    "in_flight": 1,
                    "delivered": 7,
                    "failed": 0,
                    "dead": 0,
                    "expired": 0,
                    "last_error": None,
                }
            ],
            **({"node_id": NODES[0]["node_id"], "nodes": NODES} if self.hosts else {}),
        }

    async def pause(self, args: dict[str, Any]) -> Any:
        raise CommandError("the store is read-only")

    async def nodes(self, args: dict[str, Any]) -> Any:
        return {"node_id": NODES[0]["node_id"], "nodes": NODES}

    async def drain(self, args: dict[str, Any]) -> Any:
        return {"node_id": NODES[0]["node_id"], "draining": True, "leases": 3}

    async def undrain(self, args: dict[str, Any]) -> Any:
        return {"node_id": NODES[0]["node_id"], "draining": False}


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
async def server(socket_path: Path, commands: Commands) -> AsyncIterator[ControlServer]:
    control = ControlServer(socket_path, commands.table())
    await control.start()
    try:
        yield control
    finally:
        await control.close()


async def call_in_thread(path: Path, command: str, args: dict[str, Any] | None = None) -> Any:
    return await asyncio.to_thread(call, path, command, args, 5.0)


async def raw_exchange(path: Path, line: bytes) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    document = json.loads(answer)
    assert isinstance(document, dict)
    return document


def exists(path: Path) -> bool:
    return path.exists()


def mode_of(path: Path) -> int:
    return path.stat().st_mode


def stale_socket_file(path: Path) -> None:
    """A socket file nobody listens on, as a killed daemon leaves behind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    assert stat.S_ISSOCK(path.stat().st_mode)


# -- server and client --------------------------------------------------------------------------


async def test_ok_result(server: ControlServer, socket_path: Path, commands: Commands) -> None:
    result = await call_in_thread(socket_path, "echo", {"channel": "Привет", "n": 1})
    assert result == {"you said": {"channel": "Привет", "n": 1}}
    assert commands.calls == [("echo", {"channel": "Привет", "n": 1})]


async def test_no_args_is_an_empty_dict(
    server: ControlServer, socket_path: Path, commands: Commands
) -> None:
    await call_in_thread(socket_path, "echo")
    assert commands.calls == [("echo", {})]


async def test_command_error(server: ControlServer, socket_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        await call_in_thread(socket_path, "refuse")
    assert str(caught.value) == "there is no channel named 'x'"


async def test_command_crash_is_reported(server: ControlServer, socket_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        await call_in_thread(socket_path, "crash")
    assert "crash failed" in str(caught.value)
    assert "kaput" in str(caught.value)
    # The server survives a failing command.
    assert await call_in_thread(socket_path, "echo") == {"you said": {}}


async def test_unknown_command(server: ControlServer, socket_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        await call_in_thread(socket_path, "launch")
    assert "unknown command 'launch'" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"this is not json\n", "not a JSON line"),
        (b"[1, 2]\n", "not a JSON object"),
        (b"\xff\xfe\n", "not a JSON line"),
        (b'{"command": 5}\n', "unknown command 5"),
        (b'{"command": "echo", "args": [1]}\n', "unknown command 'echo'"),
        (b'{"args": {}}\n', "unknown command None"),
    ],
)
async def test_malformed_request(
    server: ControlServer, socket_path: Path, commands: Commands, line: bytes, expected: str
) -> None:
    answer = await raw_exchange(socket_path, line)
    assert answer["ok"] is False
    assert expected in answer["error"]
    assert commands.calls == []


async def test_raw_protocol_ok(server: ControlServer, socket_path: Path) -> None:
    answer = await raw_exchange(socket_path, b'{"command": "echo", "args": {"a": 1}}\n')
    assert answer == {"ok": True, "result": {"you said": {"a": 1}}}


async def test_many_clients_at_once(server: ControlServer, socket_path: Path) -> None:
    results = await asyncio.gather(
        *(call_in_thread(socket_path, "echo", {"i": i}) for i in range(20))
    )
    assert results == [{"you said": {"i": i}} for i in range(20)]


def test_no_socket_is_not_running(socket_path: Path) -> None:
    with pytest.raises(NotRunning) as caught:
        call(socket_path, "status")
    assert str(caught.value) == f"notifierd is not running (no socket at {socket_path})"


def test_stale_socket_is_not_running(socket_path: Path) -> None:
    stale_socket_file(socket_path)
    with pytest.raises(NotRunning) as caught:
        call(socket_path, "status")
    assert str(socket_path) in str(caught.value)


async def test_socket_mode(server: ControlServer, socket_path: Path) -> None:
    mode = mode_of(socket_path)
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


async def test_close_removes_the_socket(socket_path: Path, commands: Commands) -> None:
    control = ControlServer(socket_path, commands.table())
    await control.start()
    assert exists(socket_path)
    await control.close()
    assert not exists(socket_path)
    await control.close()  # twice is harmless
    with pytest.raises(NotRunning):
        await call_in_thread(socket_path, "echo")


async def test_refuses_to_start_over_a_live_server(
    server: ControlServer, socket_path: Path, commands: Commands
) -> None:
    second = ControlServer(socket_path, commands.table())
    with pytest.raises(SocketUnavailable, match="another notifierd"):
        await second.start()
    # The live server's socket is untouched and still answers.
    assert await call_in_thread(socket_path, "echo") == {"you said": {}}


async def test_removes_a_stale_socket(socket_path: Path, commands: Commands) -> None:
    stale_socket_file(socket_path)
    control = ControlServer(socket_path, commands.table())
    await control.start()
    try:
        assert await call_in_thread(socket_path, "echo") == {"you said": {}}
    finally:
        await control.close()


async def test_creates_the_directory(socket_dir: Path, commands: Commands) -> None:
    path = socket_dir / "sub" / "ctl.sock"
    control = ControlServer(path, commands.table())
    await control.start()
    try:
        assert await call_in_thread(path, "echo") == {"you said": {}}
    finally:
        await control.close()


# -- notifierctl ----------------------------------------------------------------------------------


def test_ctl_without_daemon(
    clean_env: pytest.MonkeyPatch, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl_main(["--socket", str(socket_path), "status"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[:2] == [
        "notifierd is not running, or not where notifierctl looked: no socket at",
        f"  {socket_path} (--socket or NOTIFIERD_SOCKET)",
    ]


def test_ctl_socket_from_env(
    clean_env: pytest.MonkeyPatch, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("NOTIFIERD_SOCKET", str(socket_path))
    assert ctl_main(["pause"]) == 1
    assert f"  {socket_path} (--socket or NOTIFIERD_SOCKET)\n" in capsys.readouterr().err


def test_ctl_socket_under_state_dir(
    clean_env: pytest.MonkeyPatch, socket_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl_main(["--state-dir", str(socket_dir), "resume"]) == 1
    expected = socket_dir / "notifierd.sock"
    assert f"  {expected} (inside --state-dir or NOTIFIERD_STATE_DIR)\n" in capsys.readouterr().err


def test_ctl_says_every_place_it_looked(
    clean_env: pytest.MonkeyPatch,
    socket_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No setting names the socket: the user's default and the system service's, absolute,
    and how to point notifierctl elsewhere; a mistyped variable is named."""
    clean_env.setenv("XDG_STATE_HOME", str(socket_dir))
    clean_env.setenv("NOTIFIERD_SOCKT", "/somewhere")
    clean_env.setattr("notifierd.paths.is_root", lambda: False)
    clean_env.chdir("/")
    assert ctl_main(["status"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1:3] == [
        f"  {socket_dir}/notifierd/notifierd.sock (the default for this user)",
        "  /run/notifierd/notifierd.sock (the system service's)",
    ]
    assert "--socket PATH or NOTIFIERD_SOCKET=PATH" in err[3]
    assert "--state-dir DIR or NOTIFIERD_STATE_DIR=DIR" in err[3]
    assert err[4] == "NOTIFIERD_SOCKT is set but is no setting: did you mean NOTIFIERD_SOCKET?"


async def test_ctl_status(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "status"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "maintenance: off" in out
    row = next(line for line in out.splitlines() if line.startswith("devnull"))
    expected = ["devnull", "null", "running", "101,102", "3", "0", "1", "7", "0", "0", "0"]
    assert row.split() == expected


async def test_ctl_status_shows_one_row_per_host(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "status"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    hosts = out.split("\nhosts: 2\n")[1].splitlines()
    assert hosts[0].split() == [
        "NODE", "HEARTBEAT", "PID", "DRAINING", "LEASES", "RATE_KEYS", "CHANNELS",
    ]  # fmt: skip
    assert hosts[1].split() == [
        "web-1:101:aaaaaaaa", "(this", "host)", "0.4", "s", "ago", "101", "no", "3",
        "telegram:0123abcd,webhook:4567ef01", "devnull", "running",
    ]  # fmt: skip
    assert hosts[2].split() == [
        "web-2:202:bbbbbbbb", "1.5", "s", "ago", "?", "yes", "0", "-", "-",
    ]  # fmt: skip


async def test_ctl_status_of_a_daemon_without_hosts(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    commands: Commands,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands.hosts = False
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "status"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "devnull" in out and "hosts" not in out


async def test_ctl_nodes(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "nodes"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NODE", "VERSION", "STARTED", "HEARTBEAT", "DRAINING", "LEADER", "LEASES",
    ]  # fmt: skip
    started = "2023-11-14T22:13:20.000+00:00"
    assert lines[1].split() == [
        "web-1:101:aaaaaaaa", "(this", "host)", "0.1.0", started, "0.4", "s", "ago", "no", "yes",
        "3",
    ]  # fmt: skip
    assert lines[2].split()[1] == "?"  # published nothing yet
    assert lines[2].split()[0] == "web-2:202:bbbbbbbb"
    assert lines[2].split()[-3:] == ["yes", "no", "0"]
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "nodes", "--json"])
    assert json.loads(capsys.readouterr().out)["nodes"] == NODES


async def test_ctl_drain_and_undrain(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "drain"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith("web-1:101:aaaaaaaa: draining: it claims no new deliveries")
    assert "finishes the 3 it holds" in out and "notifierctl undrain" in out
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "undrain"])
    assert (code, capsys.readouterr().out) == (0, "web-1:101:aaaaaaaa: claims deliveries again\n")


async def test_ctl_status_json(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "status", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["channels"][0]["pids"] == [101, 102]


async def test_ctl_command_failed(
    clean_env: pytest.MonkeyPatch,
    server: ControlServer,
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(ctl_main, ["--socket", str(socket_path), "pause"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == "notifierctl: pause: the store is read-only\n"


def test_ctl_retry_needs_a_selection(
    clean_env: pytest.MonkeyPatch, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl_main(["--socket", str(socket_path), "retry"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_ctl_socket_is_not_a_socket(
    clean_env: pytest.MonkeyPatch, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket_path.write_text("not a socket")
    code = ctl_main(["--socket", str(socket_path), "status"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1
    assert str(socket_path) in err
    assert exists(socket_path)


async def test_does_not_delete_a_regular_file(socket_dir: Path, commands: Commands) -> None:
    precious = socket_dir / "notifierd.db"
    precious.write_text("precious data")
    control = ControlServer(precious, commands.table())
    try:
        with pytest.raises(SocketUnavailable):
            await control.start()
    finally:
        if control._server is not None:
            await control.close()
    assert precious.read_text() == "precious data"

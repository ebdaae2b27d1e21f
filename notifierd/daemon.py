"""The parent process: assembles the parts, serves until asked to stop, then stops them.

Start-up, in order, each part's stop registered as it starts (so that a failure part-way
stops what had started, the channels' worker processes included): the state lock, the Store
(leases recovered), the switches, the control socket, the channels, the HTTP API, the
background tasks. A stop (SIGTERM, SIGINT, or a background task that died) lets the workers
finish what they hold while the API answers 503, then unwinds the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from typing import Any

import structlog

from notifierd.api.auth import auth_summary, protected_routes
from notifierd.api.intake import DaemonIntake, http_server
from notifierd.api.server import HttpServer
from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.control.commands import ControlCommands
from notifierd.control.server import ControlServer
from notifierd.errors import EXIT_FAILURE, EXIT_OK
from notifierd.housekeeping import BackgroundTasks, Housekeeping, follow_switches, watchdog
from notifierd.logs import LogFiles
from notifierd.maintenance import Maintenance
from notifierd.metrics import Metrics
from notifierd.node import publish_runtime, runtime
from notifierd.settings import Settings
from notifierd.state_lock import StateLock
from notifierd.store import Store, open_store
from notifierd.systemd import Notifier

log = structlog.get_logger("notifierd")


class Daemon:
    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        log_files: LogFiles | None = None,
        notifier: Notifier | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics(list(channels))
        self.store = store or open_store(
            settings.effective_store_url, dead_after=settings.dead_after
        )
        self.channels = ChannelRegistry(
            self.store, self.metrics, log_level=settings.effective_log_level
        )
        self.channels.register_all(channels)
        # The only wake-up of a new job's dispatcher: after this host's commit, and (PostgreSQL's
        # NOTIFY) after another host's, so that host's intake is claimed here at once too.
        self.store.on_wake(self.channels.wake)
        self.maintenance = Maintenance(self.store, self.channels, self._status_changed)
        self._log_files = log_files
        self._systemd = notifier or Notifier()
        self._control = ControlServer(
            settings.socket_path,
            ControlCommands(self.store, self.channels, self.maintenance).table(),
            read_timeout=settings.read_timeout,
        )
        self._tasks = BackgroundTasks(on_death=self._task_died)
        self._http: HttpServer | None = None
        self._stop_requested = asyncio.Event()
        self._exit_code = EXIT_OK

    async def run(self) -> int:
        """Start everything, serve until stopped, stop. Returns the exit code: 0 after
        SIGTERM/SIGINT, non-zero after a background task died."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._start(stack)
                await self._stop_requested.wait()
                await self._drain()
        finally:
            self._ignore_stop_signals()
        return self._exit_code

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        lock = StateLock(self.settings.state_dir)
        lock.acquire()
        stack.callback(lock.release)
        await self.store.open()
        stack.push_async_callback(self.store.close)
        # First: a SIGTERM during start-up must lead to an orderly stop, not a sudden death.
        self._install_signal_handlers()
        recovered = await self.store.recover(self.store.now())
        await self.maintenance.load()
        await self._control.start()
        stack.push_async_callback(self._control.close)
        self.channels.start(self.maintenance.may_run)
        stack.push_async_callback(self.channels.stop, self.settings.shutdown_timeout)
        intake = DaemonIntake(self.store, self.channels, self.maintenance, self.metrics)
        http = http_server(self.settings, intake, self.metrics)
        stack.push_async_callback(http.close)
        await http.start(self.settings.host, self.settings.port)
        self._http = http
        self._start_tasks()
        stack.push_async_callback(self._tasks.close)
        self._systemd.notify("READY=1", f"STATUS={self._status_line()}")
        self._log_started(recovered)

    async def _drain(self) -> None:
        """Let workers finish what they hold within the timeout while the API answers 503,
        kill the rest; whatever was not delivered stays queued in the Store."""
        self._systemd.notify("STOPPING=1", "STATUS=stopping: workers finish what they hold")
        await self._tasks.close()
        await self.channels.stop(self.settings.shutdown_timeout)
        log.info("notifierd.stopped")

    def _start_tasks(self) -> None:
        channels = self.channels.channels
        housekeeping = Housekeeping(
            self.store,
            self.channels,
            self.metrics,
            {name: channel.retry for name, channel in channels.items()},
            self.settings.journal_retention,
        )
        self._tasks.start("expiry", housekeeping.expire())
        self._tasks.start("pruning", housekeeping.prune())
        self._tasks.start("switches", follow_switches(self.maintenance))
        # Another host's Retry-After or refused credentials hold this host's sends back too.
        self._tasks.start("channel states", follow_switches(self.channels))
        self._tasks.start("node", publish_runtime(self.store, self._runtime))
        if self._systemd.watchdog_seconds:
            self._tasks.start("watchdog", watchdog(self._systemd, self._systemd.watchdog_seconds))

    def _runtime(self) -> dict[str, Any]:
        return runtime(self.channels.states(self.maintenance))

    def _log_started(self, recovered: int) -> None:
        assert self._http is not None
        settings = self.settings
        log.info(
            "notifierd.started",
            http=f"http://{settings.host}:{self._http.port}",
            socket=str(settings.socket_path),
            database=self.store.location,
            node_id=self.store.owner,
            schema_version=self.store.schema_version,
            channels=sorted(self.channels.names),
            paused=self.maintenance.paused,
            # Kept from `notifierctl stop` before the restart, until `notifierctl start`.
            stopped_channels=sorted(self.maintenance.stopped_channels & set(self.channels.names)),
            recovered_leases=recovered,
            auth=auth_summary(
                settings.api_tokens, protected_routes(settings.auth_ping, settings.auth_metrics)
            ),
        )

    # -- signals and stop requests ----------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._handle_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._handle_hangup)

    def _ignore_stop_signals(self) -> None:
        """The stop is done: a SIGTERM or SIGINT still arriving (a storm of them, a Ctrl-C held
        down) must not kill the process while it writes its last lines and exits, as the
        default action would once the loop is closed."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)

    def _handle_hangup(self) -> None:
        """SIGHUP: reopen the log file, so that logrotate can move it away."""
        if self._log_files is not None:
            self._log_files.reopen()
        log.info("notifierd.log_reopened")

    def _handle_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop_requested.is_set():
            # Asked again while draining: do not wait for the workers any longer.
            log.warning("notifierd.stopping_now", signal=name)
            self.channels.kill_all()
            return
        log.info("notifierd.stopping", signal=name)
        self._request_stop()

    def _task_died(self, name: str) -> None:
        log.error("notifierd.stopping", reason=f"the {name} task died", exit_code=EXIT_FAILURE)
        self._exit_code = EXIT_FAILURE
        self._request_stop()

    def _request_stop(self) -> None:
        self.maintenance.begin_stop()
        self._stop_requested.set()

    # -- systemd's status line --------------------------------------------------------------

    def _status_changed(self) -> None:
        self._systemd.notify(f"STATUS={self._status_line()}")

    def _status_line(self) -> str:
        if self.maintenance.paused:
            return "paused (maintenance)"
        if self._http is None:
            return "starting"
        return (
            f"serving {len(self.channels.names)} channel(s) on "
            f"http://{self.settings.host}:{self._http.port}"
        )

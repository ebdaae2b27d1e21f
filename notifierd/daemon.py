"""The parent process: owns the Store, the channels' runners, the HTTP API and the control
socket, and coordinates start-up, maintenance and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import structlog

from notifierd import __version__
from notifierd.api.app import build_app
from notifierd.api.auth import auth_summary, protected_routes
from notifierd.api.connections import ConnectionGuard, connection_limit, raise_descriptor_limit
from notifierd.api.journal import job_as_json
from notifierd.api.responses import counting_access_logger
from notifierd.api.server import HttpServer
from notifierd.api.validation import SendRequest
from notifierd.channels.rate_groups import rate_groups
from notifierd.channels.runner import ChannelRunner
from notifierd.config import Channel
from notifierd.control.server import CommandError, ControlServer
from notifierd.errors import StorageLost, StoreError
from notifierd.logs import LogFiles
from notifierd.metrics import Metrics
from notifierd.processes.handle import spawn_context
from notifierd.settings import Settings
from notifierd.state_lock import StateLock
from notifierd.states import RETRYABLE_STATES, DeliveryState
from notifierd.store import NewJob, Store, StoreCounts, open_store
from notifierd.store.sqlite.schema import SCHEMA_VERSION
from notifierd.systemd import Notifier

log = structlog.get_logger("notifierd")

PAUSED_FLAG = "paused"
STOPPED_FLAG = "stopped:"  # + channel name
HOUSEKEEPING_SECONDS = 1.0
KILL_WAIT_SECONDS = 5.0
PRUNE_BATCH = 1000
PRUNE_PAUSE = 0.05  # between full batches: let the writer serve intake
PRUNE_IDLE_SECONDS = 60.0


class Daemon:
    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        log_files: LogFiles | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics(list(channels))
        self._log_files = log_files
        self._systemd = notifier or Notifier()
        self._channels = dict(channels)
        self.store: Store = open_store(settings.effective_store_url)
        self.paused = False
        self.stopping = False
        self._stopped_channels: set[str] = set()
        self._runners: dict[str, ChannelRunner] = {}
        self._stop_requested = asyncio.Event()
        self._worker_exited = asyncio.Event()
        self._http: HttpServer | None = None
        self._control = ControlServer(
            settings.socket_path,
            {
                "status": self._cmd_status,
                "pause": self._cmd_pause,
                "resume": self._cmd_resume,
                "stop": self._cmd_stop,
                "start": self._cmd_start,
                "jobs": self._cmd_jobs,
                "deliveries": self._cmd_deliveries,
                "retry": self._cmd_retry,
            },
            read_timeout=settings.read_timeout,
        )

    # -- Intake (the API's view) ----------------------------------------------------------

    @property
    def unavailable(self) -> bool:
        return self.paused or self.stopping

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self._channels

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        job = NewJob(
            channel.name,
            request.message,
            channel.recipients,
            request.delay,
            channel.ttl,
            request.idempotency,
        )
        job_id = await self.store.add(job, time.time())
        self._runners[channel.name].wake()
        self.metrics.channel(channel.name).accepted += 1
        return job_id

    async def job(self, job_id: int) -> dict[str, Any] | None:
        record = await self.store.get_job(job_id)
        return None if record is None else job_as_json(record)

    async def metrics_text(self) -> bytes:
        counts = await self.store.counts(time.time())
        return self.metrics.render(
            counts, list(self._channels), self.paused, self._channel_states()
        )

    def health(self) -> dict[str, Any]:
        status = "stopping" if self.stopping else "paused" if self.paused else "ok"
        return {
            "status": status,
            "paused": self.paused,
            "version": __version__,
            "channels": self._channel_states(),
        }

    def _channel_states(self) -> dict[str, str]:
        return {
            name: runner.state(self.paused, name in self._stopped_channels).value
            for name, runner in self._runners.items()
        }

    # -- life cycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, then drain and stop. Returns 0."""
        lock = StateLock(self.settings.state_dir)
        lock.acquire()
        try:
            await self.store.open()
            try:
                await self._serve()
            finally:
                await self.store.close()
        finally:
            lock.release()
            self._ignore_stop_signals()
        return 0

    def _ignore_stop_signals(self) -> None:
        """The stop is done: a SIGTERM or SIGINT still arriving (a storm of them, a Ctrl-C held
        down) must not kill the process while it writes its last lines and exits, as the
        default action would once the loop is closed."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)

    async def _serve(self) -> None:
        # First: a SIGTERM during start-up must lead to an orderly stop, not a sudden death.
        self._install_signal_handlers()
        recovered = await self.store.recover(time.time())
        flags = await self.store.get_flags()
        self.paused = PAUSED_FLAG in flags
        self._stopped_channels = {
            name.removeprefix(STOPPED_FLAG) for name in flags if name.startswith(STOPPED_FLAG)
        }
        await self._control.start()
        try:
            await self._start_http()
            self._start_channels()
            loop = asyncio.get_running_loop()
            background = [
                loop.create_task(self._housekeeping()),
                loop.create_task(self._prune_journal()),
            ]
            if self._systemd.watchdog_seconds:
                background.append(loop.create_task(self._watchdog(self._systemd.watchdog_seconds)))
            self._systemd.notify("READY=1", f"STATUS={self._status_line()}")
            log.info(
                "notifierd.started",
                http=f"http://{self.settings.host}:{self._bound_port()}",
                socket=str(self.settings.socket_path),
                database=self.store.location,
                schema_version=SCHEMA_VERSION,
                channels=sorted(self._channels),
                paused=self.paused,
                # Kept from `notifierctl stop` before the restart, until `notifierctl start`.
                stopped_channels=sorted(self._stopped_channels & set(self._channels)),
                recovered_leases=recovered,
                auth=auth_summary(
                    self.settings.api_tokens,
                    protected_routes(self.settings.auth_ping, self.settings.auth_metrics),
                ),
            )
            await self._stop_requested.wait()
            self._systemd.notify("STOPPING=1", "STATUS=stopping: workers finish what they hold")
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._shutdown()
        finally:
            if self._http is not None:
                await self._http.close()
            await self._control.close()

    async def _start_http(self) -> None:
        descriptors, _ = raise_descriptor_limit()
        workers = sum(channel.processes for channel in self._channels.values())
        guard = ConnectionGuard(
            connection_limit(self.settings.max_connections, descriptors, workers),
            head_timeout=self.settings.read_timeout,
        )
        app = build_app(
            self,
            self.settings.max_body_size,
            self.settings.max_delay,
            tokens=self.settings.api_tokens,
            protected=protected_routes(self.settings.auth_ping, self.settings.auth_metrics),
            read_timeout=self.settings.read_timeout,
            first_middlewares=(guard.middleware(),),
        )
        self._http = HttpServer(
            app,
            guard,
            read_timeout=self.settings.read_timeout,
            access_log_class=counting_access_logger(
                self.metrics.http_responses.counts, self.settings.access_log
            ),
            keepalive_timeout=self.settings.keepalive_timeout,
        )
        await self._http.start(self.settings.host, self.settings.port)
        log.info("http.limits", descriptors=descriptors, max_connections=guard.limit)

    def _bound_port(self) -> int:
        assert self._http is not None
        return self._http.port

    def _start_channels(self) -> None:
        context = spawn_context()
        groups = rate_groups(self._channels.values())
        for name, channel in self._channels.items():
            runner = ChannelRunner(
                channel,
                self.store,
                context,
                self.settings.effective_log_level,
                on_store_error=self._store_failed,
                on_worker_exit=self._worker_exited.set,
                metrics=self.metrics,
                rate_group=groups[name],
            )
            self._runners[name] = runner
            runner.start_dispatcher()
            if not self.paused and name not in self._stopped_channels:
                runner.activate()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._handle_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._handle_hangup)

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
            for runner in self._runners.values():
                runner.kill_all()
            return
        log.info("notifierd.stopping", signal=name)
        self.stopping = True
        self._stop_requested.set()

    async def _shutdown(self) -> None:
        """Stop accepting, let workers finish what they hold within the timeout, kill the
        rest; whatever was not delivered stays queued in the Store."""
        self.stopping = True
        for runner in self._runners.values():
            runner.deactivate()
        if not await self._workers_exited(self.settings.shutdown_timeout):
            log.warning(
                "notifierd.killing_workers",
                count=len(self._alive_processes()),
                timeout=self.settings.shutdown_timeout,
            )
            for runner in self._runners.values():
                runner.kill_all()
            await self._workers_exited(KILL_WAIT_SECONDS)
        for runner in self._runners.values():
            await runner.close()
        log.info("notifierd.stopped")

    async def _workers_exited(self, seconds: float) -> bool:
        """Wait until no worker process is alive; False if some still are after `seconds`."""
        deadline = time.monotonic() + seconds
        while self._alive_processes():
            self._worker_exited.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._worker_exited.wait(), remaining)
        return True

    def _alive_processes(self) -> list[Any]:
        return [p for r in self._runners.values() for p in r.processes() if p.alive]

    async def _housekeeping(self) -> None:
        """Expire what outlived its TTL, hand out again what a hung worker holds."""
        policies = {name: channel.retry for name, channel in self._channels.items()}
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            now = time.time()
            try:
                expired = await self.store.expire(now)
                lapsed = await self.store.lapse_leases(now, policies)
            except StoreError as exc:
                self._store_failed(exc)
                continue
            for channel, count in expired.items():
                self.metrics.count_state(channel, DeliveryState.EXPIRED, count)
                log.info("deliveries.expired", channel=channel, count=count)
            for item in lapsed:
                runner = self._runners.get(item.channel)
                if runner is not None:
                    runner.kill_holder(item.id)
                    runner.wake()
                self.metrics.count_state(item.channel, item.state)
                log.warning(
                    "delivery.lease_lapsed",
                    channel=item.channel,
                    delivery_id=item.id,
                    state=item.state,
                )

    async def _prune_journal(self) -> None:
        """Delete finished deliveries older than the retention, a small batch at a time so
        that intake never waits long behind it."""
        while True:
            try:
                before = time.time() - self.settings.journal_retention
                pruned = await self.store.prune(before, PRUNE_BATCH)
            except StoreError as exc:
                self._store_failed(exc)
                pruned = 0
            if pruned:
                log.debug("journal.pruned", deliveries=pruned)
            idle = min(PRUNE_IDLE_SECONDS, self.settings.journal_retention / 4)
            await asyncio.sleep(PRUNE_PAUSE if pruned == PRUNE_BATCH else idle)

    async def _watchdog(self, seconds: float) -> None:
        # Sent from the event loop itself: if the loop stalls, the pings stop and systemd acts.
        while True:
            self._systemd.notify("WATCHDOG=1")
            await asyncio.sleep(seconds)

    def _status_line(self) -> str:
        if self.paused:
            return "paused (maintenance)"
        return (
            f"serving {len(self._channels)} channel(s) on "
            f"http://{self.settings.host}:{self._bound_port()}"
        )

    def _store_failed(self, exc: Exception) -> None:
        if isinstance(exc, StorageLost):
            return  # the Store said so once, with the way to recover; not again at every poll
        log.error("store.failed", error=str(exc), exc_info=not isinstance(exc, StoreError))

    # -- control commands -------------------------------------------------------------------

    def _runner(self, args: dict[str, Any]) -> ChannelRunner:
        name = args.get("channel")
        if not isinstance(name, str) or name not in self._runners:
            raise CommandError(f"there is no channel named {name!r}")
        return self._runners[name]

    async def _cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        counts = await self.store.counts(time.time())
        channels = []
        for name, runner in self._runners.items():
            channels.append(
                {
                    "name": name,
                    "worker": runner.channel.worker_type,
                    "state": runner.state(self.paused, name in self._stopped_channels).value,
                    "processes": runner.channel.processes,
                    "pids": runner.pids(),
                    **counts.get(name, StoreCounts()).by_state(),
                    "last_error": runner.fatal_reason or runner.misconfigured or runner.last_error,
                }
            )
        return {"paused": self.paused, "stopping": self.stopping, "channels": channels}

    async def _cmd_pause(self, args: dict[str, Any]) -> dict[str, Any]:
        await self.store.set_flag(PAUSED_FLAG, "1")
        self.paused = True
        for runner in self._runners.values():
            runner.deactivate()
        self._systemd.notify(f"STATUS={self._status_line()}")
        log.warning("notifierd.paused")
        return {"paused": True}

    async def _cmd_resume(self, args: dict[str, Any]) -> dict[str, Any]:
        await self.store.set_flag(PAUSED_FLAG, None)
        self.paused = False
        for name, runner in self._runners.items():
            if name not in self._stopped_channels and not self.stopping:
                runner.activate()
        self._systemd.notify(f"STATUS={self._status_line()}")
        log.warning("notifierd.resumed")
        return {"paused": False}

    async def _cmd_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        runner = self._runner(args)
        name = runner.channel.name
        await self.store.set_flag(STOPPED_FLAG + name, "1")
        self._stopped_channels.add(name)
        runner.deactivate()
        log.warning("channel.stopped", channel=name, until="notifierctl start")
        return {"channel": name, "state": "stopped", "kept_across_restarts": True}

    async def _cmd_start(self, args: dict[str, Any]) -> dict[str, Any]:
        runner = self._runner(args)
        name = runner.channel.name
        await self.store.set_flag(STOPPED_FLAG + name, None)
        self._stopped_channels.discard(name)
        runner.fatal_reason = None
        if not self.paused and not self.stopping:
            runner.activate()
        log.warning("channel.started", channel=name)
        return {"channel": name, "state": runner.state(self.paused, False).value}

    def _listing_filters(self, args: dict[str, Any]) -> tuple[str | None, str | None, int]:
        channel = args.get("channel")
        if channel is not None:
            self._runner(args)
        state = args.get("state")
        if state is not None and state not in {s.value for s in DeliveryState}:
            raise CommandError(f"unknown state {state!r}")
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise CommandError("limit must be a positive whole number")
        return channel, state, limit

    async def _cmd_jobs(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        return [asdict(job) for job in await self.store.list_jobs(*self._listing_filters(args))]

    async def _cmd_deliveries(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        records = await self.store.list_deliveries(*self._listing_filters(args))
        return [asdict(record) for record in records]

    async def _cmd_retry(self, args: dict[str, Any]) -> dict[str, Any]:
        """By job ids (`jobs`), delivery ids (`deliveries`), or a channel and a state."""
        ttl_for = {name: float(c.ttl) for name, c in self._channels.items()}
        now = time.time()
        results: list[dict[str, Any]] = []
        if "jobs" in args or "deliveries" in args:
            by_job = "jobs" in args
            ids = args["jobs" if by_job else "deliveries"]
            if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
                raise CommandError("ids must be a list of positive whole numbers")
            # Each id once: a repeated one would report "nothing to retry" for what it requeued.
            unique = list(dict.fromkeys(ids))
            done = await self.store.requeue_each(now, unique, by_job=by_job, ttl_for=ttl_for)
            for item, retried in done.items():
                if retried is None:
                    results.append({"id": item, "found": False, "requeued": 0, "untouched": {}})
                else:
                    results.append({"id": item, "found": True, **asdict(retried)})
            count = sum(result["requeued"] for result in results)
        else:
            channel = args.get("channel")
            state = args.get("state")
            if channel is None:
                raise CommandError("name job ids, delivery ids, or a channel and a state")
            self._runner(args)
            if state is not None and state not in {s.value for s in RETRYABLE_STATES}:
                raise CommandError("only dead, failed or expired deliveries can be retried")
            count = await self.store.requeue(now, (), channel, state, ttl_for)
        for runner in self._runners.values():
            runner.wake()
        return {"requeued": count, "results": results}


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0

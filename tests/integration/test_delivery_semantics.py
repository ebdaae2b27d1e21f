"""The delivery state machine (DESIGN §2), each transition proven with real processes.

Faults are injected through the null worker's `faults` parameter; attempts are timed by the
parent's `delivery.attempt` log lines and the worker's `null.delivered` lines.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from typing import Any

from tests.harness import Daemon, pids_alive, wait_for
from tests.integration.conftest import DaemonFactory


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def attempts_of(daemon: Daemon, delivery_id: int) -> list[dict[str, Any]]:
    return [e for e in daemon.events("delivery.attempt") if e["delivery_id"] == delivery_id]


def only_delivery(daemon: Daemon, **filters: Any) -> dict[str, Any]:
    [delivery] = daemon.deliveries(**filters)
    return delivery


def delivered_and_logged(daemon: Daemon) -> bool:
    """The only delivery is stored as delivered and the worker's line is written. The line
    and the outcome reach the parent by different queues, so either may come first."""
    return only_delivery(daemon)["state"] == "delivered" and bool(daemon.events("null.delivered"))


def state_of(daemon: Daemon, delivery_id: int) -> str:
    return str(next(d["state"] for d in daemon.deliveries() if d["id"] == delivery_id))


def recovered(daemon: Daemon) -> int:
    """How many leased deliveries the latest start put back in the queue."""
    started = daemon.event("notifierd.started", since_start=True)
    assert started is not None
    return int(started["recovered_leases"])


def channel(
    faults: str = "[]",
    retry: str = "{delay: 0.3, max_attempts: 5, jitter: 0}",
    extra: str = "",
    name: str = "devnull",
) -> str:
    return f"""
channels:
  {name}:
    worker: "null"
    retry: {retry}
{extra}
    params:
      faults: {faults}
"""


def test_temporary_failures_then_success_with_backoff_within_bounds(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(
            faults="[{kind: temporary, times: 2}]",
            retry="{delay: 0.5, backoff: 2, max_delay: 10, max_attempts: 5, jitter: 0.2}",
        )
    ).start()

    daemon.send("devnull", "flaky remote")

    wait_for(lambda: delivered_and_logged(daemon), what="delivered")
    delivery = only_delivery(daemon)
    assert delivery["attempts"] == 3
    assert len(daemon.events("null.delivered")) == 1  # exactly once
    tries = attempts_of(daemon, delivery["id"])
    assert [t["outcome"] for t in tries] == ["temporary", "temporary", "delivered"]
    # delay 0.5 then 1.0 (backoff 2), each ±20 % jitter, plus the time to hand it out.
    for (earlier, later), base in zip([tries[0:2], tries[1:3]], (0.5, 1.0), strict=True):
        gap = at(later) - at(earlier)
        assert base * 0.8 - 0.01 <= gap <= base * 1.2 + 0.5, (base, gap)


def test_temporary_failures_forever_end_dead_with_the_last_error(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(faults="[{kind: temporary}]", retry="{delay: 0.1, max_attempts: 3, jitter: 0}")
    ).start()
    daemon.send("devnull", "never works")

    wait_for(lambda: only_delivery(daemon)["state"] == "dead", what="dead")
    delivery = only_delivery(daemon)
    assert delivery["attempts"] == 3
    assert delivery["last_error"] == "null worker: injected temporary failure"
    listing = daemon.ctl("jobs", "--state", "dead")
    assert listing.returncode == 0
    assert "dead" in listing.stdout and "injected temporary failure" in listing.stdout
    assert not daemon.events("null.delivered")
    assert daemon.channel_status("devnull")["dead"] == 1


def test_ttl_passing_during_retries_ends_expired_without_a_late_attempt(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(
            faults="[{kind: temporary}]",
            retry="{delay: 0.4, max_attempts: 100, jitter: 0}",
            extra="    ttl: 2",
        )
    ).start()
    sent = time.time()
    daemon.send("devnull", "too late")

    wait_for(lambda: only_delivery(daemon)["state"] == "expired", what="expired")
    delivery = only_delivery(daemon)
    tries = attempts_of(daemon, delivery["id"])
    assert len(tries) >= 3
    assert all(at(t) < sent + 2.0 + 0.1 for t in tries)
    assert tries[-1]["state"] == "expired"
    assert delivery["last_error"] == "null worker: injected temporary failure"


def test_ttl_passing_while_waiting_for_the_first_try_ends_expired(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(channel(extra="    ttl: 1")).start()
    assert daemon.ctl("stop", "devnull").returncode == 0
    daemon.send("devnull", "nobody sends me")

    wait_for(lambda: only_delivery(daemon)["state"] == "expired", what="expired")
    assert daemon.ctl("start", "devnull").returncode == 0
    assert only_delivery(daemon)["attempts"] == 0
    assert daemon.channel_status("devnull")["expired"] == 1


def test_a_permanent_refusal_fails_at_once_and_is_logged(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(channel(faults="[{kind: permanent}]")).start()
    daemon.send("devnull", "refused")

    wait_for(lambda: only_delivery(daemon)["state"] == "failed", what="failed")
    delivery = only_delivery(daemon)
    assert delivery["attempts"] == 1
    assert delivery["last_error"] == "null worker: injected permanent refusal"
    [attempt] = attempts_of(daemon, delivery["id"])
    assert (attempt["level"], attempt["outcome"]) == ("error", "permanent")
    assert attempt["error"] == "null worker: injected permanent refusal"


def test_retry_after_cools_down_the_whole_channel(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(
        channel(
            faults='[{kind: retry_after, match: "^first", times: 1, retry_after: 2}]',
        )
    ).start()
    assert daemon.ctl("stop", "devnull").returncode == 0
    daemon.send("devnull", "first")
    daemon.send("devnull", "second")
    assert daemon.ctl("start", "devnull").returncode == 0

    wait_for(lambda: len(daemon.events("null.delivered")) == 2, what="both delivered")
    [limited] = [e for e in daemon.events("delivery.attempt") if e["outcome"] == "temporary"]
    assert limited["retry_after"] == 2
    for delivered in daemon.events("null.delivered"):
        assert at(delivered) - at(limited) >= 1.95, "a delivery went out during the cool-down"


def test_a_message_that_kills_its_worker_ends_dead_while_others_flow(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(
            faults='[{kind: crash, match: "^poison"}]',
            retry="{delay: 0.1, max_attempts: 3, jitter: 0}",
        )
    ).start()
    daemon.send("devnull", "poison")
    for index in range(5):
        daemon.send("devnull", f"fine {index}")

    wait_for(lambda: daemon.deliveries(state="dead"), timeout=30, what="poison dead")
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 5, what="the others")
    poison = only_delivery(daemon, state="dead")
    assert poison["attempts"] == 3
    assert "worker process died" in poison["last_error"]
    assert len(daemon.events("worker.died")) == 3
    wait_for(lambda: daemon.channel_status("devnull")["pids"], what="a worker again")
    daemon.send("devnull", "after the storm")
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 6, what="still serving")


def test_a_worker_failing_at_start_up_puts_the_channel_in_fatal(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon("""
channels:
  broken:
    worker: "null"
    params: {fail_on_open: true}
  healthy:
    worker: "null"
""").start()

    wait_for(lambda: daemon.channel_status("broken")["state"] == "fatal", timeout=20, what="FATAL")
    assert len(daemon.events("worker.start_failed")) == 3
    assert daemon.event("channel.fatal") is not None
    status = daemon.channel_status("broken")
    assert status["pids"] == []
    assert "failed to start 3 times" in status["last_error"]
    # Messages are still accepted and kept; the other channel is unaffected.
    assert daemon.send("broken", "kept for later").status_code == 204
    assert daemon.send("healthy", "hello").status_code == 204
    wait_for(lambda: daemon.channel_status("healthy")["delivered"] == 1, what="healthy")
    assert daemon.channel_status("broken")["queued"] == 1
    table = daemon.ctl("status").stdout
    assert "fatal" in table


def test_a_hung_worker_loses_its_lease_and_the_delivery_is_handed_out_again(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(faults="[{kind: hang, times: 1, seconds: 60}]", extra="    lease: 1")
    ).start()
    daemon.send("devnull", "stuck once")
    hung_pid = wait_for(lambda: daemon.channel_status("devnull")["pids"], what="worker")[0]

    wait_for(lambda: delivered_and_logged(daemon), timeout=20, what="delivered after the lapse")
    assert only_delivery(daemon)["attempts"] == 2
    assert daemon.event("delivery.lease_lapsed") is not None
    assert daemon.event("worker.hung") is not None
    wait_for(lambda: not pids_alive([hung_pid]), what="the hung worker to be killed")
    assert len(daemon.events("null.delivered")) == 1


def test_kill_9_of_the_parent_with_every_kind_of_delivery(make_daemon: DaemonFactory) -> None:
    faults = (
        '[{kind: temporary, match: "^retrying", times: 1},'
        ' {kind: hang, match: "^in flight", times: 1, seconds: 60}]'
    )
    daemon = make_daemon(
        channel(
            faults=faults, retry="{delay: 3, max_attempts: 5, jitter: 0}", extra="    prefetch: 1"
        )
    ).start()
    daemon.send("devnull", "retrying")
    wait_for(lambda: daemon.channel_status("devnull")["delayed"] == 1, what="retry wait")
    daemon.send("devnull", "in flight")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    daemon.send("devnull", "delayed", delay="1")
    for index in range(3):
        daemon.send("devnull", f"queued {index}")
    status = daemon.channel_status("devnull")
    assert (status["in_flight"], status["delayed"], status["queued"]) == (1, 2, 3)

    daemon.kill()
    wait_for(lambda: not pids_alive(status["pids"]), what="orphans to exit")
    daemon.start()

    wait_for(
        lambda: daemon.channel_status("devnull")["delivered"] == 6,
        timeout=20,
        what="all six delivered",
    )
    assert recovered(daemon) == 1
    delivered = [e["delivery_id"] for e in daemon.events("null.delivered")]
    assert sorted(delivered) == sorted(set(delivered)), "a delivery was sent twice"


def test_sigterm_lets_slow_deliveries_finish_and_leaves_the_rest_queued(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(extra="    prefetch: 1\n    processes: 2").replace(
            "faults: []", "faults: []\n      send_seconds: 1"
        )
    ).start()
    for index in range(6):
        daemon.send("devnull", f"slow {index}")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 2, what="two in flight")

    assert daemon.terminate() == 0

    finished = len(daemon.events("null.delivered"))
    assert finished >= 2  # what the workers held was finished, not dropped
    daemon.config.write_text(channel())
    daemon.start()
    assert recovered(daemon) == 0
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 6, what="the rest")


def test_sigterm_timeout_puts_what_workers_hold_back_in_the_queue(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(faults='[{kind: hang, match: "^stuck", seconds: 60}]'),
        extra_args=["--shutdown-timeout", "0.5"],
    ).start()
    daemon.send("devnull", "stuck")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    pids = daemon.channel_status("devnull")["pids"]

    assert daemon.terminate() == 0

    assert daemon.event("notifierd.killing_workers") is not None
    assert not pids_alive(pids)
    daemon.config.write_text(channel())
    daemon.start()
    assert recovered(daemon) == 0
    wait_for(lambda: only_delivery(daemon)["state"] == "delivered", what="delivered")


def test_a_delay_falling_due_while_down_is_delivered_once_after_restart(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(channel()).start()
    daemon.send("devnull", "while you were out", delay="1")
    due = time.time() + 1
    assert daemon.terminate() == 0

    wait_for(lambda: time.time() > due + 0.2, what="the due time to pass")
    daemon.start()

    wait_for(lambda: delivered_and_logged(daemon), what="delivered")
    assert len(daemon.events("null.delivered")) == 1
    assert only_delivery(daemon)["attempts"] == 1


def test_pause_during_a_retry_wait_holds_the_retry_until_resume(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channel(
            faults="[{kind: temporary, times: 1}]", retry="{delay: 3, max_attempts: 5, jitter: 0}"
        )
    ).start()
    # The retry waits 3 s: long enough that the pause (a notifierctl process, slow to start on
    # a loaded machine) always comes before it is due.
    daemon.send("devnull", "pause me")
    wait_for(
        lambda: (
            only_delivery(daemon)["attempts"] == 1 and only_delivery(daemon)["state"] == "queued"
        ),
        what="a retry wait",
    )
    assert daemon.ctl("pause").returncode == 0
    paused_at = time.time()

    # Well past the retry's due time: still one attempt, still queued.
    wait_for(lambda: daemon.channel_status("devnull")["queued"] == 1, what="due while paused")
    wait_for(lambda: time.time() > paused_at + 3.5, what="time to pass")
    assert only_delivery(daemon)["attempts"] == 1
    assert not daemon.events("null.delivered")

    assert daemon.ctl("resume").returncode == 0
    wait_for(lambda: delivered_and_logged(daemon), what="delivered")
    [delivered] = daemon.events("null.delivered")
    assert at(delivered) > paused_at + 1.0
    assert only_delivery(daemon)["attempts"] == 2


def test_stop_and_start_one_channel_while_another_delivers(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon("""
channels:
  alpha:
    worker: "null"
  beta:
    worker: "null"
""").start()
    alpha_pids = wait_for(lambda: daemon.channel_status("alpha")["pids"], what="alpha worker")
    stopped = daemon.ctl("stop", "alpha")
    assert stopped.returncode == 0 and "alpha: stopped" in stopped.stdout
    wait_for(lambda: not pids_alive(alpha_pids), what="alpha's worker to exit")

    assert daemon.send("alpha", "wait for me").status_code == 204
    assert daemon.send("beta", "go").status_code == 204
    wait_for(lambda: daemon.channel_status("beta")["delivered"] == 1, what="beta delivers")
    assert daemon.channel_status("alpha")["queued"] == 1
    assert daemon.channel_status("alpha")["state"] == "stopped"

    assert daemon.terminate() == 0
    daemon.start()
    assert daemon.channel_status("alpha")["state"] == "stopped"
    assert daemon.channel_status("alpha")["delivered"] == 0

    assert daemon.ctl("start", "alpha").returncode == 0
    wait_for(lambda: daemon.channel_status("alpha")["delivered"] == 1, what="backlog")
    assert daemon.ctl("stop", "nope").returncode == 1


def test_operator_retry_puts_failed_deliveries_back(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(channel(faults='[{kind: permanent, match: "^bad"}]')).start()
    for text in ("bad one", "bad two"):
        daemon.send("devnull", text)
    wait_for(lambda: len(daemon.deliveries(state="failed")) == 2, what="two failed")
    assert daemon.terminate() == 0
    daemon.config.write_text(channel())  # the operator fixed the cause
    daemon.start()
    [first, second] = sorted(d["id"] for d in daemon.deliveries(state="failed"))

    by_id = daemon.ctl("retry", "--delivery", str(first))
    assert by_id.returncode == 0 and "requeued 1" in by_id.stdout
    wait_for(lambda: state_of(daemon, first) == "delivered", what="retried by id")
    assert state_of(daemon, second) == "failed"

    by_state = daemon.ctl("retry", "--channel", "devnull", "--state", "failed")
    assert by_state.returncode == 0 and "requeued 1" in by_state.stdout
    wait_for(lambda: state_of(daemon, second) == "delivered", what="retried by state")
    assert daemon.ctl("retry").returncode == 2


def test_a_killed_child_mid_send_is_replaced(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(channel(faults="[{kind: hang, times: 1, seconds: 60}]")).start()
    daemon.send("devnull", "mid-send")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    [pid] = daemon.channel_status("devnull")["pids"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: only_delivery(daemon)["state"] == "delivered", what="replacement sends")
    assert pid not in daemon.channel_status("devnull")["pids"]

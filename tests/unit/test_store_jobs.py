"""The Store by job: `list_jobs` (one summary per job) and `requeue_each` (the operator's retry
of named jobs or deliveries, reported per id)."""

from __future__ import annotations

from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import NewJob, Retried
from notifierd.store.sqlite import SqliteStore

T0 = 1_700_000_000.0
POLICY = RetryPolicy(delay=10, max_attempts=1, jitter=0)


async def two_jobs(store: SqliteStore) -> tuple[int, int]:
    """A job whose two deliveries failed (one dead, one failed), then a delivered one."""
    failed = await store.add(NewJob("c", "bad", ["a", "b"], 0, 3600), T0)
    claimed = (await store.claim("c", 10, T0, 60)).deliveries
    outcomes = [
        Outcome(claimed[0].id, claimed[0].lease_token, OutcomeKind.TEMPORARY, None, "busy"),
        Outcome(claimed[1].id, claimed[1].lease_token, OutcomeKind.PERMANENT, None, "no"),
    ]
    await store.complete(outcomes, POLICY, T0 + 1)
    good = await store.add(NewJob("d", "good", ["x"], 0, 3600), T0 + 2)
    [delivery] = (await store.claim("d", 10, T0 + 2, 60)).deliveries
    done = Outcome(delivery.id, delivery.lease_token, OutcomeKind.DELIVERED)
    await store.complete([done], POLICY, T0 + 3)
    return failed, good


async def test_list_jobs_sums_the_states_newest_first(store: SqliteStore) -> None:
    failed, good = await two_jobs(store)
    jobs = await store.list_jobs(None, None, 10)
    assert [(j.id, j.channel, j.states) for j in jobs] == [
        (good, "d", {"delivered": 1}),
        (failed, "c", {"dead": 1, "failed": 1}),
    ]
    assert jobs[1].created_at == T0 and jobs[1].updated_at == T0 + 1
    assert jobs[1].last_error in ("busy", "no") and jobs[0].last_error is None
    assert [j.id for j in await store.list_jobs("c", None, 10)] == [failed]
    assert [j.id for j in await store.list_jobs(None, "dead", 10)] == [failed]
    assert [j.id for j in await store.list_jobs(None, None, 1)] == [good]


async def test_requeue_each_by_job_and_by_delivery(store: SqliteStore) -> None:
    failed, good = await two_jobs(store)
    by_job = await store.requeue_each(T0 + 5, [failed, good, 999], by_job=True, ttl_for={})
    assert by_job == {
        failed: Retried(2, {}),
        good: Retried(0, {"delivered": 1}),
        999: None,
    }
    assert (await store.counts(T0 + 5))["c"].queued == 2
    [first, _] = (await store.claim("c", 10, T0 + 5, 60)).deliveries
    assert first.attempt == 1  # attempts reset
    by_delivery = await store.requeue_each(T0 + 6, [first.id, 12345], by_job=False, ttl_for={})
    assert by_delivery == {first.id: Retried(0, {"leased": 1}), 12345: None}

"""The contract on what the daemon's housekeeping and the operator do: expiry, requeue,
prune, counts, has_pending."""

from __future__ import annotations

from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import Retried, Store, StoreCounts
from tests.store_contract.helpers import LEASE, POLICY, T0, claim_one, job, outcome, record


async def one_of_each(store: Store) -> dict[str, int]:
    """One delivery of channel c in each state, and a dead one of channel d; ids by label."""
    labels = ["delivered", "failed", "dead", "expired", "queued", "leased"]
    for label in labels:
        await store.add(job(label, ttl=5 if label == "expired" else 3600), T0)
    await store.add(job("dead-d", channel="d"), T0)
    claimed = {d.message: d for d in (await store.claim("c", 10, T0, LEASE)).deliveries}
    [dead_d] = (await store.claim("d", 10, T0, LEASE)).deliveries
    await store.complete(
        [
            outcome(claimed["delivered"], OutcomeKind.DELIVERED),
            outcome(claimed["failed"], OutcomeKind.PERMANENT, "refused"),
            outcome(claimed["expired"], OutcomeKind.TEMPORARY, "down"),
            outcome(claimed["queued"], OutcomeKind.UNSTARTED),
        ],
        POLICY,
        T0,
    )
    one_try = RetryPolicy(max_attempts=1)
    await store.complete([outcome(claimed["dead"], OutcomeKind.TEMPORARY)], one_try, T0)
    await store.complete([outcome(dead_d, OutcomeKind.TEMPORARY)], one_try, T0)
    ids = {label: claimed[label].id for label in labels}
    ids["dead-d"] = dead_d.id
    found = {r.id: r.state for r in await store.list_deliveries(None, None, 100)}
    assert {label: found[i] for label, i in ids.items() if label != "dead-d"} == {
        label: label for label in labels
    }
    return ids


async def test_queued_deliveries_past_their_ttl_expire(store: Store) -> None:
    await store.add(job("short", ttl=10), T0)
    await store.add(job("long", ttl=100), T0)
    await store.add(job("leased", ttl=10), T0 - 1)
    leased = await claim_one(store, T0 - 1)
    assert await store.expire(T0 + 9) == {}
    assert await store.expire(T0 + 10) == {"c": 1}
    assert await store.expire(T0 + 10) == {}
    by_state = {r.state: r for r in await store.list_deliveries("c", None, 10)}
    assert sorted(by_state) == ["expired", "leased", "queued"]
    assert by_state["expired"].updated_at == T0 + 10
    assert by_state["expired"].last_error is not None
    assert by_state["leased"].id == leased.id  # a leased one waits for its outcome


async def test_requeue_puts_finished_deliveries_back_with_a_fresh_start(store: Store) -> None:
    ids = await one_of_each(store)
    wanted = [ids["dead"], ids["delivered"], ids["queued"], ids["leased"]]
    assert await store.requeue(T0 + 50, ids=wanted, ttl_for={"c": 100.0}) == 1
    rec = await record(store, ids["dead"])
    assert (rec.state, rec.attempts, rec.due_at, rec.expires_at) == ("queued", 0, T0 + 50, T0 + 150)
    assert await store.requeue(T0 + 50, channel="c") == 2  # failed and expired
    assert await store.requeue(T0 + 50, channel="d", state="failed") == 0
    assert (await record(store, ids["dead-d"])).state == "dead"
    assert await store.requeue(T0 + 50, state="dead") == 1
    claimed = (await store.claim("c", 10, T0 + 50, LEASE)).deliveries
    assert sorted(d.message for d in claimed) == ["dead", "expired", "failed", "queued"]


async def test_requeue_each_says_what_it_did_per_job(store: Store) -> None:
    ids = await one_of_each(store)
    stored = {r.id: r.job_id for r in await store.list_deliveries(None, None, 100)}
    jobs = [stored[ids["failed"]], stored[ids["delivered"]], 999_999]
    done = await store.requeue_each(T0 + 50, jobs, by_job=True, ttl_for={})
    assert done == {
        jobs[0]: Retried(1, {}),
        jobs[1]: Retried(0, {"delivered": 1}),
        999_999: None,
    }
    by_delivery = await store.requeue_each(T0 + 50, [ids["dead"]], by_job=False, ttl_for={})
    assert by_delivery == {ids["dead"]: Retried(1, {})}


async def test_prune_deletes_old_finished_deliveries_and_their_jobs(store: Store) -> None:
    ids = await one_of_each(store)
    stored = {r.id: r.job_id for r in await store.list_deliveries(None, None, 100)}
    assert await store.prune(T0, 100) == 0  # nothing changed before T0
    assert await store.prune(T0 + 1, 2) == 2
    assert await store.prune(T0 + 1, 100) == 3  # delivered, failed, dead, expired, dead-d
    left = {r.state for r in await store.list_deliveries(None, None, 100)}
    assert left == {"queued", "leased"}
    assert await store.get_job(stored[ids["delivered"]]) is None
    assert await store.get_job(stored[ids["queued"]]) is not None


async def test_counts_by_channel_and_state(store: Store) -> None:
    assert await store.counts(T0) == {}
    await one_of_each(store)
    await store.add(job("due later", delay=100), T0)
    counts = await store.counts(T0 + 1)
    assert counts["c"] == StoreCounts(
        queued=1, delayed=1, in_flight=1, delivered=1, failed=1, dead=1, expired=1
    )
    assert counts["d"] == StoreCounts(dead=1)
    assert (await store.counts(T0 + 1000))["c"].queued == 2


async def test_has_pending_is_true_while_a_delivery_is_queued_or_leased(store: Store) -> None:
    assert await store.has_pending("c") is False
    await store.add(job(delay=1000), T0)
    assert await store.has_pending("c") is True  # queued, not due yet
    assert await store.has_pending("d") is False
    delivery = await claim_one(store, T0 + 1000)
    assert await store.has_pending("c") is True  # leased
    await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, T0 + 1001)
    assert await store.has_pending("c") is False

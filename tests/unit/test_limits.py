"""limits.py: the outbound byte budget and the message token bucket, without sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tornado_phoenix.limits import OutboundBudget, TokenBucket


class FakeQueue:
    def __init__(self, name: str, pending: int = 0) -> None:
        self.name = name
        self.pending = pending

    def pending_bytes(self) -> int:
        return self.pending


def test_per_socket_cap_closes_that_socket_only():
    budget = OutboundBudget(total=1000, per_socket=100)
    a = FakeQueue("a")
    assert budget.update(a, 100) == []
    victims = budget.update(a, 101)
    assert [(v[0], v[1]) for v in victims] == [(a, 101)] and "TP_MAX_PENDING_BYTES=100" in victims[0][2]
    assert budget.total == 0


def test_over_total_closes_largest_queues_first_until_under():
    budget = OutboundBudget(total=250, per_socket=200)
    queues = [FakeQueue(str(n), size) for n, size in enumerate([50, 150, 100])]
    for queue in queues[:2]:
        assert budget.update(queue, queue.pending) == []
    victims = budget.update(queues[2], 100)  # 300 > 250: closing the 150 brings it to 150
    assert [v[0].name for v in victims] == ["1"]
    assert "TP_MAX_PENDING_BYTES_TOTAL=250" in victims[0][2] and "largest queue closed first" in victims[0][2]
    assert budget.total == 150


def test_drained_queues_are_refreshed_before_anyone_is_closed():
    budget = OutboundBudget(total=250, per_socket=200)
    a, b = FakeQueue("a", 200), FakeQueue("b", 100)
    assert budget.update(a, 200) == []
    a.pending = 0  # drained since it was last seen
    assert budget.update(b, 100) == []
    assert budget.total == 100


def test_forget_and_zero_pending_remove_the_queue():
    budget = OutboundBudget(total=250, per_socket=200)
    a = FakeQueue("a", 10)
    budget.update(a, 10)
    budget.update(a, 0)
    assert budget.total == 0
    budget.update(a, 10)
    budget.forget(a)
    budget.forget(a)
    assert budget.total == 0


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 300)), max_size=200))
def test_total_never_stays_over_the_budget(updates):
    budget = OutboundBudget(total=500, per_socket=250)
    queues = [FakeQueue(str(n)) for n in range(10)]
    closed: set[str] = set()
    for index, pending in updates:
        queue = queues[index]
        if queue.name in closed:
            continue
        queue.pending = pending
        for victim, _queued, _reason in budget.update(queue, pending):
            closed.add(victim.name)
            victim.pending = 0
        assert budget.total <= 500
        assert budget.total == sum(q.pending for q in queues if q.name not in closed and q.pending)


def test_token_bucket_burst_then_rate():
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token back after 1/rate seconds
    assert not bucket.take(0.1)
    assert all(bucket.take(100.0) for _ in range(5)) and not bucket.take(100.0)  # never more than burst


@given(st.lists(st.floats(0, 0.01), min_size=1, max_size=500))
def test_token_bucket_never_allows_more_than_burst_plus_rate_times_time(gaps):
    rate, burst = 100.0, 20
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        allowed += bucket.take(now)
    assert allowed <= burst + rate * now + 1e-9

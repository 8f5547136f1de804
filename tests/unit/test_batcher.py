"""The micro-batcher, driven by a fake clock: examples first, then properties over random schedules."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simstream.core.batcher import (
    BatchLimits,
    MicroBatcher,
    inverse_order,
    length_sorted_order,
    sort_by_length,
)
from simstream.schemas.settings import Settings


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def batcher(max_items: int = 4, max_tokens: int = 100, max_wait_s: float = 0.5) -> tuple[MicroBatcher[str], FakeClock]:
    clock = FakeClock()
    return MicroBatcher(BatchLimits(max_items, max_tokens, max_wait_s), clock=clock), clock


# --- examples ----------------------------------------------------------------------------------


def test_closes_when_the_item_limit_is_reached() -> None:
    micro, _ = batcher(max_items=3)

    assert micro.add("a", 1) == []
    assert micro.add("b", 1) == []
    assert micro.add("c", 1) == [["a", "b", "c"]]
    assert len(micro) == 0


def test_padded_tokens_close_the_batch_before_the_item_that_overflows() -> None:
    micro, _ = batcher(max_items=10, max_tokens=100)

    assert micro.add("a", 30) == []
    assert micro.add("b", 30) == []  # padded 60
    assert micro.padded_tokens == 60
    # Sum would be 100 but padded is 3 * 40 = 120: the open batch leaves first.
    assert micro.add("c", 40) == [["a", "b"]]
    assert len(micro) == 1
    assert micro.padded_tokens == 40


def test_exactly_full_token_budget_closes_at_once() -> None:
    micro, _ = batcher(max_items=10, max_tokens=100)

    assert micro.add("a", 50) == []
    assert micro.add("b", 50) == [["a", "b"]]


def test_an_oversized_item_is_a_batch_of_its_own() -> None:
    micro, _ = batcher(max_items=10, max_tokens=100)
    micro.add("a", 10)

    assert micro.add("huge", 500) == [["a"], ["huge"]]
    assert micro.add("b", 10) == []
    assert micro.flush() == [["b"]]


def test_deadline_counts_from_the_first_item() -> None:
    micro, clock = batcher(max_wait_s=0.5)
    assert micro.time_until_due() is None

    micro.add("a", 1)
    clock.now += 0.3
    micro.add("b", 1)  # a later item does not push the deadline back
    assert micro.time_until_due() == pytest.approx(0.2)
    assert micro.due() == []

    clock.now += 0.2
    assert micro.time_until_due() == 0.0
    assert micro.due() == [["a", "b"]]
    assert micro.due() == []
    assert micro.time_until_due() is None


def test_next_batch_gets_a_fresh_deadline() -> None:
    micro, clock = batcher(max_items=2, max_wait_s=1.0)
    micro.add("a", 1)
    clock.now += 0.9
    micro.add("b", 1)  # closes the first batch by size

    micro.add("c", 1)
    clock.now += 0.5
    assert micro.due() == []
    assert micro.time_until_due() == pytest.approx(0.5)


def test_zero_wait_makes_every_pending_batch_due() -> None:
    micro, _ = batcher(max_wait_s=0.0)
    micro.add("a", 1)

    assert micro.due() == [["a"]]


def test_flush_empties_whatever_the_limits() -> None:
    micro, _ = batcher()
    assert micro.flush() == []
    micro.add("a", 1)
    micro.add("b", 2)

    assert micro.flush() == [["a", "b"]]
    assert len(micro) == 0
    assert micro.flush() == []


def test_negative_tokens_are_rejected() -> None:
    micro, _ = batcher()

    with pytest.raises(ValueError, match="tokens"):
        micro.add("a", -1)
    assert len(micro) == 0


@pytest.mark.parametrize(
    ("max_items", "max_tokens", "max_wait_s"),
    [(0, 10, 0.1), (1, 0, 0.1), (1, 10, -0.1), (1, 10, float("nan"))],
)
def test_invalid_limits_are_rejected(max_items: int, max_tokens: int, max_wait_s: float) -> None:
    with pytest.raises(ValueError):
        BatchLimits(max_items, max_tokens, max_wait_s)


def test_limits_from_settings() -> None:
    limits = BatchLimits.from_settings(Settings(batch_max_items=8, batch_max_tokens=512, batch_max_wait_ms=250))

    assert limits == BatchLimits(max_items=8, max_tokens=512, max_wait_s=0.25)


def test_length_sorted_order_and_restore() -> None:
    items = ["bb", "a", "dddd", "cc", "eee"]
    lengths = [2, 1, 4, 2, 3]

    ordered, restore = sort_by_length(items, lengths)

    assert ordered == ["dddd", "eee", "bb", "cc", "a"]  # longest first, ties keep their order
    results = [item.upper() for item in ordered]  # stands in for per-item encoder output
    assert [results[index] for index in restore] == [item.upper() for item in items]


def test_sort_by_length_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="2 items but 1 lengths"):
        sort_by_length(["a", "b"], [1])


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=50))
def test_length_sorted_order_is_a_descending_permutation(lengths: list[int]) -> None:
    order = length_sorted_order(lengths)

    assert sorted(order) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    inverse = inverse_order(order)
    assert [order[inverse[i]] for i in range(len(lengths))] == list(range(len(lengths)))


# --- properties over random schedules ----------------------------------------------------------


@dataclass
class Add:
    tokens: int


@dataclass
class Tick:
    seconds: float


@dataclass
class Due:
    pass


@dataclass
class Emitted:
    batch: list[int]
    by_add: bool


@dataclass
class Run:
    limits: BatchLimits
    added: list[int] = field(default_factory=list)
    tokens: dict[int, int] = field(default_factory=dict)
    emitted: list[Emitted] = field(default_factory=list)


operations = st.lists(
    st.one_of(
        st.builds(Add, st.integers(min_value=0, max_value=120)),
        st.builds(Tick, st.floats(min_value=0.0, max_value=1.0)),
        st.just(Due()),
    ),
    max_size=80,
)
limits = st.builds(
    BatchLimits,
    max_items=st.integers(min_value=1, max_value=8),
    max_tokens=st.integers(min_value=1, max_value=300),
    max_wait_s=st.floats(min_value=0.0, max_value=2.0),
)


def play(batch_limits: BatchLimits, ops: list[Add | Tick | Due]) -> Run:
    clock = FakeClock()
    micro: MicroBatcher[int] = MicroBatcher(batch_limits, clock=clock)
    run = Run(batch_limits)
    arrival: list[float] = []
    for op in ops:
        if isinstance(op, Add):
            item = len(run.added)
            run.added.append(item)
            run.tokens[item] = op.tokens
            arrival.append(clock.now)
            run.emitted += [Emitted(batch, by_add=True) for batch in micro.add(item, op.tokens)]
        elif isinstance(op, Tick):
            clock.now += op.seconds
        else:
            # The deadline is honoured exactly: due iff the open batch's first item waited max_wait_s.
            pending = len(micro)
            wait = micro.time_until_due()
            ready = micro.due()
            if pending == 0:
                assert wait is None and ready == []
            else:
                first = arrival[len(run.added) - pending]
                overdue = clock.now >= first + batch_limits.max_wait_s
                assert (ready != []) == overdue
                assert wait is not None and (wait == 0.0) == overdue
                assert ready in ([], [run.added[-pending:]])
            run.emitted += [Emitted(batch, by_add=False) for batch in ready]
    run.emitted += [Emitted(batch, by_add=False) for batch in micro.flush()]
    assert len(micro) == 0 and micro.time_until_due() is None
    return run


def padded(batch: list[int], tokens: dict[int, int]) -> int:
    return len(batch) * max(tokens[item] for item in batch)


@settings(max_examples=300, deadline=None)
@given(batch_limits=limits, ops=operations)
def test_no_item_lost_duplicated_or_reordered(batch_limits: BatchLimits, ops: list[Add | Tick | Due]) -> None:
    run = play(batch_limits, ops)

    assert [item for emitted in run.emitted for item in emitted.batch] == run.added
    assert all(emitted.batch for emitted in run.emitted)


@settings(max_examples=300, deadline=None)
@given(batch_limits=limits, ops=operations)
def test_batches_respect_the_limits(batch_limits: BatchLimits, ops: list[Add | Tick | Due]) -> None:
    run = play(batch_limits, ops)

    for emitted in run.emitted:
        assert len(emitted.batch) <= batch_limits.max_items
        if len(emitted.batch) > 1:  # only a lone oversized item may exceed the token budget
            assert padded(emitted.batch, run.tokens) <= batch_limits.max_tokens


@settings(max_examples=300, deadline=None)
@given(batch_limits=limits, ops=operations)
def test_size_closed_batches_are_as_large_as_allowed(batch_limits: BatchLimits, ops: list[Add | Tick | Due]) -> None:
    run = play(batch_limits, ops)

    for current, following in zip(run.emitted, run.emitted[1:], strict=False):
        if current.by_add:
            grown = [*current.batch, following.batch[0]]
            assert len(grown) > batch_limits.max_items or padded(grown, run.tokens) > batch_limits.max_tokens, (
                "a batch was closed although the next item would have fit"
            )


def test_the_wait_counts_from_the_first_items_arrival_not_from_when_it_was_added() -> None:
    """A record that queued while the worker was busy has waited already: its batch is not held longer."""
    micro, clock = batcher(max_wait_s=0.5)
    assert micro.add("a", 1, waited_s=0.3) == []
    assert micro.time_until_due() == pytest.approx(0.2)
    clock.now += 0.19
    assert micro.due() == []
    clock.now += 0.02
    assert micro.due() == [["a"]]
    assert micro.add("b", 1, waited_s=2.0) == [] and micro.due() == [["b"]]  # overdue on arrival
    assert micro.add("c", 1, waited_s=-5.0) == [] and micro.time_until_due() == pytest.approx(0.5)

"""Which products of a batch hold a replay that a newer version of the same product outranks."""

from __future__ import annotations

from simstream.core.pipeline import Inbound, newest_per_product, replays_superseded
from simstream.core.vector_store import StoredState
from simstream.producers.publish import product_event


def inbound(product_id: str, version: int, *, delete: bool = False) -> Inbound:
    product = None if delete else {"title": f"{product_id} v{version}"}
    return Inbound(product_event(product_id, version, product), None if delete else "text", 1, 0.0)


def superseded(batch: list[Inbound], states: dict[str, StoredState | None]) -> set[str]:
    return replays_superseded(batch, newest_per_product(batch), states)


def test_a_replay_followed_by_a_newer_version_is_found() -> None:
    batch = [inbound("a", 1), inbound("b", 1), inbound("a", 2)]
    states: dict[str, StoredState | None] = {"a": StoredState(1, "h", True), "b": StoredState(1, "h", True)}
    # b is a replay too, but its newest event is the replay itself: the regular relist rule covers it.
    assert superseded(batch, states) == {"a"}


def test_a_replayed_delete_outranked_by_a_re_create_is_found() -> None:
    batch = [inbound("a", 3, delete=True), inbound("a", 4)]
    assert superseded(batch, {"a": StoredState(3, None, False)}) == {"a"}


def test_new_and_stale_events_are_not_replays() -> None:
    batch = [inbound("new", 1), inbound("new", 2), inbound("old", 1), inbound("old", 3)]
    states: dict[str, StoredState | None] = {"new": None, "old": StoredState(2, "h", True)}
    assert superseded(batch, states) == set()

"""The list protocol's ordering rules, written once and run against both implementations: the
in-memory one (tests/unit) and Redis (tests/integration)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from simstream.core.list_store import Lists, Mode, PoolProposal, Prepared, StoredList
from simstream.core.pools import COMPLETE, Pool
from simstream.core.vector_store import Neighbor

MODEL = "test-model@1"
# The product version members are stored at, and scored with unless a case says otherwise.
MEMBER_VERSION = 1


def pool_of(*ids: str, bound: float = COMPLETE, source: int = 1) -> Pool:
    return Pool(tuple((pid, 0.9 - 0.01 * i, 0.9 - 0.01 * i) for i, pid in enumerate(ids)), bound, source)


def propose(
    lists: Lists, pid: str, *ids: str, mode: Mode = "emit", source: int = 1, scored: Mapping[str, int] | None = None
) -> Prepared:
    """Read the list's state, then offer a pool of these members (its list: the same ids), each scored
    at MEMBER_VERSION unless ``scored`` gives its version."""
    state = lists.read_states([pid])[pid]
    pool = pool_of(*ids, source=source)
    items = [Neighbor(member, hybrid) for member, _dense, hybrid in pool.entries]
    versions = {member: MEMBER_VERSION for member in ids} | dict(scored or {})
    proposal = PoolProposal(state, pool, items, source, MODEL, mode=mode, check_owner=False, member_versions=versions)
    return lists.prepare({pid: proposal})


def ready(prepared: Prepared) -> list[StoredList]:
    return list(prepared.ready.values())


def the_fresher_list_wins_whatever_order_they_commit_in(lists: Lists) -> None:
    older = ready(propose(lists, "p", "a"))
    newer = ready(propose(lists, "p", "b"))
    assert older[0].list_version < newer[0].list_version
    assert lists.commit(newer) == [True]
    assert lists.commit(older) == [False]
    assert [n.product_id for n in lists.read_lists(["p"])["p"].items] == ["b"]


def a_pool_that_moved_since_it_was_read_is_sent_back(lists: Lists) -> None:
    state = lists.read_states(["p"])["p"]
    lists.commit(ready(propose(lists, "p", "a")))  # another worker, in between
    stale = PoolProposal(
        state, pool_of("x"), [Neighbor("x", 0.9)], 1, MODEL, check_owner=False, member_versions={"x": MEMBER_VERSION}
    )
    outcome = lists.prepare({"p": stale})
    assert outcome.retry == ["p"] and not outcome.ready
    assert lists.rev_many(["x", "a"]) == {"x": set(), "a": {"p"}}


def rev_sets_follow_the_pool_exactly(lists: Lists) -> None:
    lists.commit(ready(propose(lists, "p", "a", "b")))
    lists.commit(ready(propose(lists, "q", "b")))
    lists.commit(ready(propose(lists, "p", "b", "c")))
    assert lists.rev_many(["a", "b", "c"]) == {"a": set(), "b": {"p", "q"}, "c": {"p"}}
    assert lists.delete_list("q")
    assert lists.rev_many(["b"]) == {"b": {"p"}}


def an_unchanged_list_is_not_emitted_but_its_pool_is_stored(lists: Lists) -> None:
    lists.commit(ready(propose(lists, "p", "a")))
    skipped = propose(lists, "p", "a", "z", mode="same")
    assert skipped.unchanged == 1 and not skipped.ready
    assert lists.rev_many(["z"]) == {"z": {"p"}}


def an_unchanged_list_is_emitted_while_another_is_in_flight(lists: Lists) -> None:
    lists.commit(ready(propose(lists, "p", "a")))
    in_flight = ready(propose(lists, "p", "stale"))
    # Equal to the committed list, but the in-flight one would reach the topic after it.
    again = ready(propose(lists, "p", "a", mode="same"))
    assert again and again[0].list_version > in_flight[0].list_version
    lists.commit(again)
    lists.commit(in_flight)
    assert [n.product_id for n in lists.read_lists(["p"])["p"].items] == ["a"]


def a_replay_is_emitted_even_when_unchanged(lists: Lists) -> None:
    lists.commit(ready(propose(lists, "p", "a")))
    assert ready(propose(lists, "p", "a", mode="forced"))


def a_delete_fences_the_lists_computed_before_it(lists: Lists) -> None:
    computed_before = ready(propose(lists, "p", "a"))
    assert not lists.delete_list("p")  # nothing was current yet
    assert lists.commit(computed_before) == [False]
    assert lists.read_lists(["p"]) == {}
    after = ready(propose(lists, "p", "b"))
    assert lists.commit(after) == [True] and after[0].list_version > computed_before[0].list_version


def a_pool_naming_a_deleted_product_goes_back(lists: Lists, delete_product: Callable[[str], None]) -> None:
    delete_product("gone")
    outcome = propose(lists, "p", "a", "gone")
    assert outcome.retry == ["p"]
    assert lists.rev_many(["a"]) == {"a": set()}


def a_member_written_since_it_was_scored_goes_back(lists: Lists, set_version: Callable[[str, int], None]) -> None:
    """A member entering a pool with a score from an older version is refused: the writer of its newer
    version looked up rev: before this pool held it, and would never correct that score."""
    set_version("m", MEMBER_VERSION + 1)
    stale = propose(lists, "p", "a", "m")  # m scored at MEMBER_VERSION
    assert stale.retry == ["p"] and not stale.ready
    assert lists.read_states(["p"])["p"].pool is None
    assert lists.rev_many(["a", "m"]) == {"a": set(), "m": set()}
    current = propose(lists, "p", "a", "m", scored={"m": MEMBER_VERSION + 1})
    assert list(current.ready) == ["p"] and not current.retry
    assert lists.rev_many(["a", "m"]) == {"a": {"p"}, "m": {"p"}}
    # Members already in the pool are not checked: a writer of m finds this pool through rev:{m}.
    set_version("m", MEMBER_VERSION + 2)
    kept = propose(lists, "p", "a", "m", "b", scored={"m": MEMBER_VERSION + 1})
    assert list(kept.ready) == ["p"] and lists.rev_many(["b"]) == {"b": {"p"}}


def versions_of_one_list_only_rise(lists: Lists) -> None:
    versions: list[int] = []
    for members in (("a",), ("b",), ("a",), ("c",)):
        written = ready(propose(lists, "p", *members))
        lists.commit(written)
        versions.append(written[0].list_version)
    assert versions == sorted(set(versions))


CASES: Sequence[Callable[[Lists], None]] = (
    the_fresher_list_wins_whatever_order_they_commit_in,
    a_pool_that_moved_since_it_was_read_is_sent_back,
    rev_sets_follow_the_pool_exactly,
    an_unchanged_list_is_not_emitted_but_its_pool_is_stored,
    an_unchanged_list_is_emitted_while_another_is_in_flight,
    a_replay_is_emitted_even_when_unchanged,
    a_delete_fences_the_lists_computed_before_it,
    versions_of_one_list_only_rise,
)

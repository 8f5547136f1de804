"""frozen_heap hides what is alive from the collector for the block, and gives it back after."""

from __future__ import annotations

import gc

import pytest

from simstream.core.frozen_heap import frozen_heap


def test_objects_alive_at_the_start_are_frozen_for_the_block_only() -> None:
    gc.unfreeze()
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        created = [object() for _ in range(10)]  # noqa: F841  (alive inside, not frozen)
    assert gc.get_freeze_count() == 0


def test_the_heap_is_unfrozen_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("the worker stopped")
    assert gc.get_freeze_count() == 0

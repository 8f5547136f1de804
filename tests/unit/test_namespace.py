"""The names of a run's private namespace: valid settings, all derived from the run's name."""

from __future__ import annotations

from simstream.core.namespace import namespace_fields
from simstream.schemas.settings import Settings


def test_namespace_fields_are_settings_fields_that_all_carry_the_name() -> None:
    fields = namespace_fields("run-42")
    settings = Settings(**fields)
    assert all("run-42" in getattr(settings, name) for name in fields)
    assert set(fields.values()).isdisjoint(namespace_fields("run-43").values())

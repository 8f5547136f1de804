"""The exported JSON Schema and the decoder give the same verdict on every event.

Events are generated from the committed ``product.v1.json`` itself (hypothesis-jsonschema), then
mutated field by field with values that sit on the rules' edges; a validator in another service that
reads the schema must accept exactly what the worker accepts.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from support.schema_events import EDGE_TIMES, decoder_verdict, mutated_events, schema_events, schema_verdict


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_events())
def test_every_event_the_schema_generates_is_accepted(event: dict[str, Any]) -> None:
    assert decoder_verdict(event), event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated_events())
def test_schema_and_decoder_agree_on_edge_values(event: dict[str, Any]) -> None:
    assert schema_verdict(event) == decoder_verdict(event), event


def delete_event(**changes: object) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": "product.v1",
        "type": "product.deleted",
        "event_id": "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60",
        "product_id": "sku-1",
        "version": 1,
        "occurred_at": "2026-11-29T12:00:00Z",
    }
    return {**event, **changes}


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_occurred_at_edges_agree(when: object) -> None:
    event = delete_event(occurred_at=when)
    assert schema_verdict(event) == decoder_verdict(event)


@pytest.mark.parametrize("version", [2**53, 2**60, 2**63])
def test_versions_the_server_cannot_compare_are_refused_by_both(version: int) -> None:
    event = delete_event(version=version)
    assert not schema_verdict(event)
    assert not decoder_verdict(event)

"""Helpers shared by the integration tests (imported as ``support.*``)."""

"""Read a worker's /metrics and /healthz over HTTP, as Prometheus and a Kubernetes probe would."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)


def get(url: str, timeout_s: float = 10.0) -> tuple[int, str, bytes]:
    """Status, content type and body; an HTTP error status is an answer here, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def scrape(base_url: str) -> dict[Sample, float]:
    status, _, body = get(f"{base_url}/metrics")
    assert status == 200, f"/metrics answered {status}"
    return parse_samples(body.decode())


def parse_samples(exposition: str) -> dict[Sample, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))

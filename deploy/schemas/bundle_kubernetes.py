"""Rebuild ``kubernetes-strict.json``: only the Kubernetes schemas that deploy/k8s needs, in one file.

The source is the PyPI package ``kubernetes-validate`` (Apache-2.0), which ships the upstream OpenAPI
as JSON Schema per Kubernetes version; its ``-local-strict`` flavour rejects unknown fields, so a typo
in a manifest fails the test instead of being silently ignored by kubectl's client side.

    pip install kubernetes-validate && python deploy/schemas/bundle_kubernetes.py

Descriptions are dropped (they are ~75% of the bytes and play no part in validation).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "1.33.0"
# (apiVersion/kind, the package's per-kind file); the bundle names each root like upstream OpenAPI does.
KINDS = {
    "apps/v1/Deployment": ("deployment-apps-v1.json", "io.k8s.api.apps.v1.Deployment"),
    "v1/ConfigMap": ("configmap-v1.json", "io.k8s.api.core.v1.ConfigMap"),
    "v1/Service": ("service-v1.json", "io.k8s.api.core.v1.Service"),
}
DEFS_PREFIX = "#/$defs/"
# Per-file identifiers would make each root its own resource again; descriptions do not validate.
DROPPED_KEYS = frozenset({"description", "$id", "$schema"})


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _localise(node: Any) -> Any:
    """Drop ``DROPPED_KEYS`` and point every ``$ref`` (``/api/_definitions.json#/$defs/X``) into this file."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED_KEYS:
                continue
            if key == "$ref" and isinstance(value, str):
                out[key] = DEFS_PREFIX + value.split("#/$defs/", 1)[1]
            else:
                out[key] = _localise(value)
        return out
    if isinstance(node, list):
        return [_localise(value) for value in node]
    return node


def bundle(version: str) -> dict[str, Any]:
    # find_spec, not import: only the package's data is needed, not its runtime dependencies.
    spec = find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        raise SystemExit("kubernetes-validate is not installed: pip install kubernetes-validate")
    folder = Path(spec.origin).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions: dict[str, Any] = json.loads((folder / "_definitions.json").read_text())["$defs"]
    roots = {name: json.loads((folder / file).read_text()) for file, name in KINDS.values()}

    needed: set[str] = set()
    pending = [ref for root in roots.values() for ref in _refs(root)]
    while pending:
        name = pending.pop().split("#/$defs/", 1)[1]
        if name not in needed:
            needed.add(name)
            pending.extend(_refs(definitions[name]))

    defs = {name: _localise(definitions[name]) for name in sorted(needed)}
    defs.update({name: _localise(root) for name, root in roots.items()})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Kubernetes v{version} strict schemas from kubernetes-validate, pruned by bundle_kubernetes.py",
        "x-kinds": {kind: name for kind, (_, name) in KINDS.items()},
        "$defs": dict(sorted(defs.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default=KUBERNETES_VERSION)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("kubernetes-strict.json"))
    args = parser.parse_args()
    args.out.write_text(json.dumps(bundle(args.version), indent=1, sort_keys=False) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()

"""The deploy/ ACL file, rendered for one test: its key patterns moved to the test's namespace and its
password placeholders filled with test passwords, so the test loads exactly what ships."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

DEPLOY_ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"
WORKER = "simstream-worker"
STOREFRONT = "simstream-storefront"
PLACEHOLDERS = {
    WORKER: "#REPLACE_WITH_SHA256_OF_THE_WORKER_PASSWORD",
    STOREFRONT: "#REPLACE_WITH_SHA256_OF_THE_STOREFRONT_PASSWORD",
}
# "simstream" where it starts a key pattern (~simstream:*, %R~simstream:product:*, ~simstream-idx*):
# the file is written for the default names, a test's namespace_fields(name) uses name instead.
_PATTERN_ROOT = re.compile(r"(?<=~)simstream(?=[:-])")


def render_acl_rules(name: str, passwords: Mapping[str, str], text: str | None = None) -> str:
    """The deploy file for a namespace ``name`` (prefix ``name:``, index ``name-idx-v1``, alias ``name-idx``)."""
    rendered = DEPLOY_ACL_FILE.read_text(encoding="ascii") if text is None else text
    for user, placeholder in PLACEHOLDERS.items():
        assert rendered.count(placeholder) == 1, f"{placeholder} must appear once in {DEPLOY_ACL_FILE}"
        rendered = rendered.replace(placeholder, "#" + hashlib.sha256(passwords[user].encode()).hexdigest())
    return _PATTERN_ROOT.sub(name, rendered)

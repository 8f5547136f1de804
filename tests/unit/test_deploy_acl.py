"""deploy/redis/users.acl is a file Redis can load once its placeholders are filled (no comments, one
``user`` per line), keeps the AOF-safe default user, and gives the storefront read commands only."""

from __future__ import annotations

from support.acl import DEPLOY_ACL_FILE, PLACEHOLDERS, STOREFRONT, WORKER, render_acl_rules

from simstream.devstack.redis_server import DEFAULT_USER_RULE

STOREFRONT_COMMANDS = {
    "+ping", "+client|setinfo", "+ft.search", "+ft.aggregate", "+ft.info",
    "+get", "+mget", "+hget", "+hmget", "+hgetall",
}  # fmt: skip


def _users(text: str) -> dict[str, list[str]]:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert all(words[0] == "user" for words in lines), "an ACL file holds only user lines (no comments)"
    return {words[1]: words[2:] for words in lines}


def test_the_file_holds_the_two_users_and_the_aof_safe_default_user() -> None:
    text = DEPLOY_ACL_FILE.read_text(encoding="ascii")
    assert text.splitlines()[0] == DEFAULT_USER_RULE  # the rule the dev stack writes too
    assert set(_users(text)) == {"default", WORKER, STOREFRONT}
    for placeholder in PLACEHOLDERS.values():
        assert text.count(placeholder) == 1


def test_the_storefront_reads_only_and_the_worker_has_no_script_source_or_admin_command() -> None:
    users = _users(render_acl_rules("shop", {WORKER: "w", STOREFRONT: "s"}))
    storefront, worker = users[STOREFRONT], users[WORKER]
    assert {rule for rule in storefront if rule.startswith("+")} == STOREFRONT_COMMANDS
    assert "-@all" in storefront and "-@all" in worker
    assert [rule for rule in storefront if "~" in rule] == [
        "~shop-idx", "%R~shop:product:*", "%R~shop:g*:product:*", "%R~shop:similar:*",
    ]  # fmt: skip
    assert [rule for rule in worker if "~" in rule] == ["~shop:*", "~shop-idx*"]
    assert not {"+eval", "+fcall", "+function", "+flushall", "+config", "+keys", "+@all"} & set(worker)
    assert all(rule.startswith("#") and len(rule) == 65 for rule in (storefront[1], worker[1]))

"""``simstream model status|upgrade|gate|promote|rollback|cleanup|quantize``: change the model while the
workers keep serving (core/generations; README "Changing the model").

- ``upgrade --to MODEL``: a shadow generation beside the live one (its own index and product hashes),
  registered so that every worker writes each change into both, then backfilled from the texts the
  live generation holds. A kill anywhere is safe: running it again resumes (what the shadow already
  holds at the live version is skipped).
- ``promote``: the quality gate (model_gate), then one script makes the shadow live and marks every
  list for a rebuild, the alias moves to the new index (FT.ALIASUPDATE), and a worker's bulk pass emits
  every product's list once, with the new ``model``. The old generation stays current as the shadow.
- ``rollback``: the same swap back, while the old generation still exists.
- ``cleanup``: stop writing the shadow generation, then drop its index and keys.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from tqdm import tqdm

from simstream.core.backfill import BackfillReport, backfill
from simstream.core.catalog_copy import CatalogWriter
from simstream.core.errors import SimstreamError
from simstream.core.first_load import FirstLoad
from simstream.core.generations import (
    Generation,
    Generations,
    GenerationStore,
    first_generation,
    new_generation,
    stored_generations,
)
from simstream.core.namespace import delete_keys_under
from simstream.core.pipeline_factory import EncoderFactory, load_encoder
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.vector_store import RedisVectorStore, StoredState
from simstream.model_gate import TOLERANCE, GateReport, Labels, format_gate, run_gate
from simstream.schemas.settings import Settings
from simstream.terms_command import wait_rebuilt

# Seconds cleanup waits between the last write to the dropped generation being asked for and its
# deletion: a batch that read the generations just before keeps writing them for one batch at most.
CLEANUP_GRACE_S = 10.0


@dataclass(slots=True)
class UpgradeReport:
    shadow: Generation
    resumed: bool
    load_s: float  # loading the new model
    index_s: float  # creating its index and registering it
    backfill: BackfillReport


@dataclass(slots=True)
class SwapReport:
    generations: Generations  # after the swap
    gate: GateReport | None
    swapped: bool
    swap_s: float
    rebuild_s: float | None  # waited for every list to be rebuilt, else None


class ModelCommand:
    """The operations behind ``simstream model``, on one deployment (one Redis prefix)."""

    def __init__(self, settings: Settings, client: redis.Redis, *, encoder_for: EncoderFactory = load_encoder) -> None:
        self.settings = settings
        self.client = client
        self.keys = RedisKeys(settings.redis_prefix)
        self.generations = GenerationStore(client, self.keys)
        self._encoder_for = encoder_for

    def store(self, generation: Generation) -> RedisVectorStore:
        return RedisVectorStore.from_settings(generation.settings(self.settings), self.client)

    def current(self) -> Generations:
        """The generations in use; before any upgrade, the settings' index as generation 1."""
        found = self.generations.read()
        if found is not None:
            return found
        with redis_errors("read the live index"):
            meta = {
                text(k): text(v) for k, v in self.client.hgetall(self.keys.index_meta(self.settings.index_name)).items()
            }
        if "model" not in meta or "dim" not in meta:
            raise SimstreamError(
                f"no live index {self.settings.index_name!r} under {self.settings.redis_prefix!r}: nothing to upgrade "
                f"(start a worker or `simstream load` first)"
            )
        return Generations(first_generation(self.settings, meta["model"], int(meta["dim"])))

    # --- upgrade -------------------------------------------------------------------------------

    def upgrade(self, model: str, revision: str | None = None, *, progress: bool = True) -> UpgradeReport:
        found = self.current()
        started = time.perf_counter()
        encoder = self._encoder_for(self.settings.model_copy(update={"model": model, "model_revision": revision}))
        load_s = time.perf_counter() - started
        if encoder.model_id == found.live.model_id:
            raise SimstreamError(f"{encoder.model_id} is the live model already")
        started = time.perf_counter()
        shadow, resumed = found.shadow, found.shadow is not None
        if shadow is not None and shadow.number < found.live.number:
            raise SimstreamError(
                f"the previous model {shadow.model_id} is kept for a rollback: drop it with "
                "`simstream model cleanup` before another upgrade"
            )
        if shadow is not None and shadow.model_id != encoder.model_id:
            raise SimstreamError(
                f"an upgrade to {shadow.model_id} is in progress (generation {shadow.number}): "
                "promote it, or drop it with `simstream model cleanup`, first"
            )
        if shadow is None:
            numbers = [g.number for g in stored_generations(self.settings, self.client)] + [found.live.number]
            shadow = new_generation(
                self.settings,
                max(numbers) + 1,
                model,
                encoder.model_id.rpartition("@")[2],
                encoder.model_id,
                encoder.dim,
            )
        shadow_store = self.store(shadow)
        shadow_store.ensure_index(encoder.dim, encoder.model_id)
        # From here on every worker writes each change into the shadow too (core/generations); what was
        # written before is in the live generation, which the backfill reads after this.
        if not resumed and not self.generations.register(found.live, shadow):
            raise SimstreamError(f"the model generations changed meanwhile (now {self.generations.value()}): try again")
        index_s = time.perf_counter() - started
        report = self._backfill(found.live, shadow, CatalogWriter(encoder, shadow_store), progress=progress)
        return UpgradeReport(shadow, resumed, load_s, index_s, report)

    def _backfill(
        self, live: Generation, shadow: Generation, writer: CatalogWriter, *, progress: bool
    ) -> BackfillReport:
        ids = sorted(set(self.store(live).indexed_product_ids()) | set(writer.store.indexed_product_ids()))
        progress_key = self.keys.backfill(shadow.number)
        with redis_errors("record the backfill's progress"):
            self.client.hset(progress_key, mapping={"total": len(ids), "started_at": time.time()})
            self.client.hdel(progress_key, "finished_at")
        bar = tqdm(total=len(ids), desc=f"backfill {shadow.model_id}", unit="product", disable=not progress)

        def note(report: BackfillReport) -> None:
            bar.update(report.done - bar.n)
            bar.set_postfix(encoded=report.counts.encoded, current=report.counts.current, refresh=False)
            with redis_errors("record the backfill's progress"):
                self.client.hset(progress_key, mapping={"done": report.done, "encoded": report.counts.encoded})

        with bar:
            report = backfill(self.client, self.store(live).keys, ids, writer, progress=note)
        with redis_errors("record the backfill's progress"):
            self.client.hset(progress_key, mapping={"done": report.done, "finished_at": time.time()})
        return report

    # --- gate, promote, rollback -----------------------------------------------------------------

    def gate(self, *, labels: Labels | None = None, sample: int = 500, tolerance: float = TOLERANCE) -> GateReport:
        found = self.current()
        if found.shadow is None:
            raise SimstreamError("no shadow model to compare: start one with `simstream model upgrade --to MODEL`")
        live_encoder = self._encoder_for(found.live.settings(self.settings))
        shadow_encoder = self._encoder_for(found.shadow.settings(self.settings))
        return run_gate(
            self.settings, self.client, found, live_encoder, shadow_encoder, labels=labels, sample=sample,
            tolerance=tolerance,
        )  # fmt: skip

    def promote(
        self,
        *,
        force: bool = False,
        labels: Labels | None = None,
        sample: int = 500,
        tolerance: float = TOLERANCE,
        wait: bool = True,
        timeout_s: float = 3600.0,
    ) -> SwapReport:
        found = self.current()
        shadow = found.shadow
        if shadow is None:
            raise SimstreamError("no shadow model to promote: start one with `simstream model upgrade --to MODEL`")
        if shadow.number < found.live.number:
            raise SimstreamError(f"generation {shadow.number} is the previous model: use `simstream model rollback`")
        with redis_errors("read the backfill's progress"):
            finished = self.client.hget(self.keys.backfill(shadow.number), "finished_at")
        if finished is None:
            raise SimstreamError(
                f"the backfill of {shadow.model_id} has not finished: run `simstream model upgrade --to "
                f"{shadow.model}` again to resume it"
            )
        gate = self.gate(labels=labels, sample=sample, tolerance=tolerance)
        if not gate.passed and not force:
            return SwapReport(found, gate, False, 0.0, None)
        return self._swap(found, Generations(shadow, found.live), gate, wait=wait, timeout_s=timeout_s)

    def rollback(self, *, wait: bool = True, timeout_s: float = 3600.0) -> SwapReport:
        found = self.current()
        previous = found.shadow
        if previous is None or previous.number > found.live.number:
            raise SimstreamError(
                "nothing to roll back to: no previous model is kept (before a promotion, "
                "`simstream model cleanup` abandons the upgrade)"
            )
        return self._swap(found, Generations(previous, found.live), None, wait=wait, timeout_s=timeout_s)

    def _swap(
        self, found: Generations, new: Generations, gate: GateReport | None, *, wait: bool, timeout_s: float
    ) -> SwapReport:
        started = time.perf_counter()
        if not self.generations.swap(found, new, rebuild_lists=True):
            raise SimstreamError(f"the model generations changed meanwhile (now {self.generations.value()}): try again")
        # Storefronts querying through the alias see the new index from here on; both are complete.
        self.store(new.live).promote_alias()
        swap_s = time.perf_counter() - started
        rebuild_s = wait_rebuilt(FirstLoad(self.client, self.keys), timeout_s) if wait else None
        return SwapReport(new, gate, True, swap_s, rebuild_s)

    # --- cleanup -------------------------------------------------------------------------------

    def cleanup(self, *, grace_s: float = CLEANUP_GRACE_S) -> tuple[Generation, int]:
        """Drop the shadow generation (the previous model, or an abandoned upgrade); keys deleted."""
        found = self.current()
        dropped = found.shadow
        if dropped is None:
            raise SimstreamError("no shadow model to drop")
        if not self.generations.swap(found, Generations(found.live), rebuild_lists=False):
            raise SimstreamError(f"the model generations changed meanwhile (now {self.generations.value()}): try again")
        time.sleep(grace_s)
        store = self.store(dropped)
        store.drop_index(delete_documents=True)
        deleted = sum(
            delete_keys_under(self.client, prefix)
            for prefix in (store.keys.product_prefix, store.keys.version_fence_prefix)
        )
        with redis_errors(f"delete the descriptor of model generation {dropped.number}"):
            self.client.delete(self.keys.backfill(dropped.number), self.keys.generation(dropped.number))
        return dropped, deleted

    # --- status --------------------------------------------------------------------------------

    def differences(self, live: Generation, shadow: Generation) -> int:
        """Products whose version (or deletion) the two generations do not agree on: 0 once the backfill
        finished, apart from a batch being written at this moment."""
        live_store, shadow_store = self.store(live), self.store(shadow)
        ids = sorted(set(live_store.indexed_product_ids()) | set(shadow_store.indexed_product_ids()))
        differ = 0
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            ours, theirs = live_store.states(chunk), shadow_store.states(chunk)
            differ += sum(_state(ours.get(pid)) != _state(theirs.get(pid)) for pid in chunk)
        return differ

    def status(self) -> dict[str, Any]:
        found = self.current()
        alias = self.store(found.live).alias_target()
        pending = FirstLoad(self.client, self.keys).pending() is not None

        def describe(generation: Generation, role: str) -> dict[str, Any]:
            with redis_errors("read the backfill's progress"):
                progress = {
                    text(k): text(v) for k, v in self.client.hgetall(self.keys.backfill(generation.number)).items()
                }
            return {
                "role": role,
                "number": generation.number,
                "model_id": generation.model_id,
                "model": generation.model,
                "dim": generation.dim,
                "index": generation.index_name,
                "documents": self.store(generation).count(),
                "backfill": progress or None,
            }

        rows = [describe(found.live, "live")]
        if found.shadow is not None:
            rows.append(describe(found.shadow, "shadow") | {"differ": self.differences(found.live, found.shadow)})
        return {
            "generations": self.generations.value(),
            "alias": self.settings.index_alias,
            "alias_target": alias,
            "lists_rebuild_pending": pending,
            "models": rows,
        }


def _state(state: StoredState | None) -> tuple[int, bool] | None:
    return None if state is None else (state.version, state.exists)


def format_status(status: dict[str, Any]) -> str:
    lines = [
        f"generations={status['generations'] or '1 (no upgrade yet)'} alias {status['alias']} -> "
        f"{status['alias_target']} lists_rebuild_pending={status['lists_rebuild_pending']}"
    ]
    for row in status["models"]:
        backfill = row["backfill"]
        done = ""
        if backfill:
            state = "finished" if "finished_at" in backfill else "NOT finished (rerun upgrade to resume)"
            done = f" backfill {backfill.get('done', 0)}/{backfill.get('total', '?')} {state}"
        if "differ" in row:
            done += f"; {row['differ']} products differ from the live model's"
        lines.append(
            f"  {row['role']:<6} #{row['number']} {row['model_id']} dim={row['dim']} index={row['index']} "
            f"documents={row['documents']}{done}"
        )
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", required=True)
    status = sub.add_parser("status", help="the live and shadow models, their indexes, the backfill")
    status.add_argument("--json", action="store_true")
    upgrade = sub.add_parser("upgrade", help="build a shadow index for another model and backfill it (resumable)")
    upgrade.add_argument("--to", required=True, help="a model name or local folder (never fetched from a hub)")
    upgrade.add_argument("--revision", default=None, help="the revision to load (default: the one found)")
    upgrade.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, help_text in (
        ("gate", "the quality gate: both models on labelled pairs, and their lists' overlap"),
        ("promote", "gate, then make the shadow model live and rebuild every list"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--left", type=Path, default=None, help="left offers (default: bundled Abt.csv)")
        command.add_argument("--right", type=Path, default=None, help="right offers (default: bundled Buy.csv)")
        command.add_argument("--matches", type=Path, default=None, help="id mapping left,right (default: Abt-Buy's)")
        command.add_argument("--sample", type=int, default=500, help="products whose lists are compared (500)")
        command.add_argument(
            "--tolerance", type=float, default=TOLERANCE, help="recall@1 the new model may lose and pass (default 0)"
        )
        command.add_argument("--json", action="store_true")
        if name == "promote":
            command.add_argument("--force", action="store_true", help="promote even when the gate refuses")
            _wait_arguments(command)
    _wait_arguments(sub.add_parser("rollback", help="make the previous model live again (while it exists)"))
    cleanup = sub.add_parser("cleanup", help="drop the shadow model: the previous one, or an abandoned upgrade")
    cleanup.add_argument("--grace", type=float, default=CLEANUP_GRACE_S, help="seconds before keys are deleted")
    quantize = sub.add_parser("quantize", help="write an int8-quantised copy of the default model to a folder")
    quantize.add_argument("--out", type=Path, required=True)


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the lists to be rebuilt")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the rebuild (3600)")


def cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.model_command == "quantize":
            return _quantize(args.out)
        with closing(make_redis_client(settings)) as client:
            return _run(args, ModelCommand(settings, client))
    except SimstreamError as exc:
        print(f"simstream model: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, command: ModelCommand) -> int:
    name = args.model_command
    if name == "status":
        status = command.status()
        print(orjson.dumps(status).decode() if args.json else format_status(status))
        return 0
    if name == "upgrade":
        report = command.upgrade(args.to, args.revision, progress=not args.no_progress)
        fill = report.backfill
        print(
            f"{'resumed' if report.resumed else 'created'} generation {report.shadow.number}: {report.shadow.model_id} "
            f"(index {report.shadow.index_name}); model loaded in {report.load_s:.1f} s, index {report.index_s:.1f} s\n"
            f"backfill: {fill.done} products in {fill.seconds:.1f} s: {fill.counts.encoded} encoded "
            f"({fill.counts.encode_seconds:.1f} s in the encoder), {fill.counts.written} written, "
            f"{fill.counts.deleted} deletes, {fill.counts.current} already current\n"
            "every change is now written to both models; next: `simstream model promote`"
        )
        return 0
    if name == "cleanup":
        dropped, deleted = command.cleanup(grace_s=args.grace)
        print(f"dropped generation {dropped.number} ({dropped.model_id}): index {dropped.index_name}, {deleted} keys")
        return 0
    labels = Labels(getattr(args, "left", None), getattr(args, "right", None), getattr(args, "matches", None))
    if name == "gate":
        gate = command.gate(labels=labels, sample=args.sample, tolerance=args.tolerance)
        print(orjson.dumps(gate.as_dict()).decode() if args.json else format_gate(gate))
        return 0 if gate.passed else 1
    if name == "promote":
        swap = command.promote(
            force=args.force, labels=labels, sample=args.sample, tolerance=args.tolerance, wait=False
        )
    else:
        swap = command.rollback(wait=False)
    as_json = getattr(args, "json", False)
    if swap.swapped and not args.no_wait:
        if not as_json:
            _print_swap(swap, as_json=False)
            print("waiting for a worker's bulk pass to rebuild every list (--no-wait leaves it to the workers)")
        swap.rebuild_s = wait_rebuilt(FirstLoad(command.client, command.keys), args.timeout)
        if not as_json:
            print(f"every list rebuilt in {swap.rebuild_s:.1f} s")
            return 0
    return _print_swap(swap, as_json=as_json)


def _print_swap(swap: SwapReport, *, as_json: bool) -> int:
    if as_json:
        print(
            orjson.dumps(
                {
                    "swapped": swap.swapped,
                    "generations": swap.generations.value,
                    "live_model": swap.generations.live.model_id,
                    "gate": None if swap.gate is None else swap.gate.as_dict(),
                    "swap_s": round(swap.swap_s, 3),
                    "rebuild_s": None if swap.rebuild_s is None else round(swap.rebuild_s, 1),
                }
            ).decode()
        )
    else:
        if swap.gate is not None:
            print(format_gate(swap.gate))
        if not swap.swapped:
            print("not promoted: the shadow model is worse on the labelled pairs (--force promotes anyway)")
        else:
            rebuilt = "" if swap.rebuild_s is None else f"; every list rebuilt in {swap.rebuild_s:.1f} s"
            print(
                f"live model now {swap.generations.live.model_id} (index {swap.generations.live.index_name}), "
                f"alias swapped in {swap.swap_s:.2f} s{rebuilt}"
            )
    return 0 if swap.swapped else 1


def _quantize(out: Path) -> int:
    """An int8 copy of the default model (core/quantized): the cheaper model to upgrade to on CPUs."""
    from simstream.core.quantized import quantized_default_model

    written, base = quantized_default_model(out)
    print(
        f"wrote {written}: {base} with dynamic int8 Linear layers (CPU only); upgrade with "
        f"`simstream model upgrade --to {written}`"
    )
    return 0

"""Every Redis key simstream writes, in one place (design.md §3).

All keys share one prefix (``Settings.redis_prefix``) so several deployments can share a server and the
vector index can select product hashes by prefix alone. The product hashes and version fences of one
model generation (core/generations) live under ``catalog_prefix``: the first generation's is the prefix
itself, a later one's ``<prefix>g<N>:``, so a new model's vectors are built beside the live ones while
the lists, their pools and every other key stay where readers find them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str
    catalog_prefix: str | None = None  # None: ``prefix`` (the first model generation)

    @property
    def catalog(self) -> str:
        return self.prefix if self.catalog_prefix is None else self.catalog_prefix

    @property
    def product_prefix(self) -> str:
        """What the index's ``PREFIX`` clause selects: every product hash and nothing else."""
        return f"{self.catalog}product:"

    def product(self, product_id: str) -> str:
        """HASH: embedding, title, brand, category, price, version, content_hash, model, updated_at."""
        return f"{self.catalog}product:{product_id}"

    def version_fence(self, product_id: str) -> str:
        """STRING: highest version seen, deletes included; never removed, so replays cannot resurrect."""
        return f"{self.catalog}ver:{product_id}"

    @property
    def version_fence_prefix(self) -> str:
        return f"{self.catalog}ver:"

    def similar(self, product_id: str) -> str:
        """STRING: the product's last emitted similar-items JSON (one GET for storefronts)."""
        return f"{self.prefix}similar:{product_id}"

    def list_meta(self, product_id: str) -> str:
        """HASH: ``committed`` (list_version of ``similar:{id}``), ``pending`` (highest list_version
        prepared and not yet committed), ``fence`` (no list stamped below may become current); kept
        after deletes."""
        return f"{self.prefix}listmeta:{product_id}"

    @property
    def catalog_sequence(self) -> str:
        """STRING clock: advanced by every applied product write or delete (max of +1 and the server's
        microseconds). A list computed after reading it reflects every write up to that number: the
        number is the list's ``list_version``."""
        return f"{self.prefix}catalog:seq"

    def applied_offsets(self, group_id: str) -> str:
        """HASH ``topic:partition`` -> the next input offset whose effects Redis does not hold yet, written
        after a batch's writes; behind Kafka's committed offset means Redis lost writes (replay)."""
        return f"{self.prefix}offsets:{group_id}"

    @property
    def first_load(self) -> str:
        """STRING counter, present while a first load defers its list work (core/first_load): the
        number of batches that wrote products since the lists were last built in bulk."""
        return f"{self.prefix}firstload"

    @property
    def terms_current(self) -> str:
        """STRING: the version of the term-statistics snapshot lists are scored with (core/terms)."""
        return f"{self.prefix}terms:current"

    def terms(self, version: str) -> str:
        """STRING: one term-statistics snapshot (documents and document frequencies, JSON)."""
        return f"{self.prefix}terms:{version}"

    @property
    def rev_prefix(self) -> str:
        return f"{self.prefix}rev:"

    def rev(self, product_id: str) -> str:
        """SET: the products whose current list was ranked from a pool holding ``product_id``."""
        return f"{self.prefix}rev:{product_id}"

    def dropped(self, product_id: str) -> str:
        """SET, expiring: the products whose pool held ``product_id`` when a batch deleted it, for a
        replay of that delete (the first run emptied ``rev:{id}``; core/list_store)."""
        return f"{self.prefix}dropped:{product_id}"

    @property
    def generations(self) -> str:
        """STRING ``<live>`` or ``<live>,<shadow>``: the model generations in use (core/generations)."""
        return f"{self.prefix}models"

    def generation(self, number: int) -> str:
        """STRING: one model generation's descriptor (JSON: model, revision, index, catalog prefix)."""
        return f"{self.prefix}model:{number}"

    def backfill(self, number: int) -> str:
        """HASH: a shadow generation's backfill progress (done, total, encoded, started_at, finished_at)."""
        return f"{self.prefix}model:{number}:backfill"

    def index_meta(self, index_name: str) -> str:
        """HASH: the dimension and model an index was built for."""
        return f"{self.prefix}meta:index:{index_name}"

    def product_id_of(self, key: str) -> str:
        """The product id inside a product hash key (as FT.SEARCH and SCAN return them)."""
        return key.removeprefix(self.product_prefix)

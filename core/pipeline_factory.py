"""The pipeline of the model generations in use (core/generations), built again whenever they change.

A worker (and ``simstream load``) asks :meth:`PipelineFactory.build` for a pipeline: encoder, index and
product hashes of the live generation, and, while an upgrade runs, a writer for the shadow generation.
Encoders are loaded once per model and revision and kept, so a promotion or a rollback switches in
the time of one Redis read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from simstream.core.catalog_copy import CatalogWriter
from simstream.core.encoder import Encoder
from simstream.core.errors import ModelLoadError
from simstream.core.first_load import FirstLoad
from simstream.core.generations import Generation, GenerationStore, GenerationWatch
from simstream.core.list_store import ListStore
from simstream.core.pipeline import Pipeline, RefreshPolicy
from simstream.core.redis_keys import RedisKeys
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings

log = logging.getLogger(__name__)

EncoderFactory = Callable[[Settings], Encoder]


def load_encoder(settings: Settings) -> Encoder:
    from simstream.core.encoder import TransformerEncoder

    return TransformerEncoder.from_settings(settings)


class PipelineFactory:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        encoder_for: EncoderFactory = load_encoder,
        first_load_on_empty: bool | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._encoder_for = encoder_for
        self._encoders: dict[tuple[str, str | None], Encoder] = {}
        self._first_load_on_empty = settings.first_load_bulk if first_load_on_empty is None else first_load_on_empty
        self.generations = GenerationStore(client, RedisKeys(settings.redis_prefix))

    def current(self) -> str | None:
        """The generations Redis names now (compare with ``Pipeline.generations.expected``)."""
        return self.generations.value()

    @property
    def loaded_models(self) -> set[str]:
        """The model ids whose encoders this factory keeps loaded."""
        return {encoder.model_id for encoder in self._encoders.values()}

    def seed(self, settings: Settings, encoder: Encoder) -> None:
        """Use ``encoder`` (already loaded) for ``settings``' model, named with or without its revision."""
        revision = encoder.model_id.rpartition("@")[2]
        self._encoders[(settings.model, settings.model_revision)] = encoder
        self._encoders[(settings.model, revision)] = encoder

    def encoder(self, settings: Settings) -> Encoder:
        key = (settings.model, settings.model_revision)
        if key not in self._encoders:
            self._encoders[key] = self._encoder_for(settings)
        return self._encoders[key]

    def build(self) -> Pipeline:
        settings, client = self._settings, self._client
        found = self.generations.read()
        watch = GenerationWatch(self.generations.keys.generations, None if found is None else found.value)
        live = settings if found is None else self._generation_settings(found.live)
        if found is not None:
            log.info(
                "model generations %s: live %s%s (SIMSTREAM_MODEL=%s; `simstream model` decides which is live)",
                found.value, found.live.model_id,
                "" if found.shadow is None else f", shadow {found.shadow.model_id} (every change written to both)",
                settings.model,
            )  # fmt: skip
        encoder = self.encoder(live)
        store = RedisVectorStore.from_settings(live, client)
        store.ensure_index(encoder.dim, encoder.model_id)
        shadow = None
        if found is not None and found.shadow is not None:
            shadow_settings = self._generation_settings(found.shadow)
            shadow_store = RedisVectorStore.from_settings(shadow_settings, client)
            shadow_encoder = self.encoder(shadow_settings)
            shadow_store.ensure_index(shadow_encoder.dim, shadow_encoder.model_id)
            shadow = CatalogWriter(shadow_encoder, shadow_store)
        # Encoders of models no longer in use are let go (a cleanup dropped one); the others stay loaded.
        in_use = {id(encoder), *(() if shadow is None else (id(shadow.encoder),))}
        self._encoders = {key: loaded for key, loaded in self._encoders.items() if id(loaded) in in_use}
        first_load = FirstLoad(client, store.keys)
        if self._first_load_on_empty and store.count() == 0:
            first_load.begin()
        refresh = RefreshPolicy(
            enabled=settings.refresh_enabled, fanout=settings.refresh_fanout, epsilon=settings.list_score_epsilon
        )
        return Pipeline(
            encoder,
            store,
            ListStore.from_settings(live, client),
            SimilarityPolicy.from_settings(settings),
            text_template=settings.text_template,
            refresh=refresh,
            first_load=first_load,
            terms=TermsStore(client, store.keys),
            shadow=shadow,
            generations=watch,
        )

    def _generation_settings(self, generation: Generation) -> Settings:
        chosen = generation.settings(self._settings)
        encoder = self.encoder(chosen)
        if encoder.model_id != generation.model_id:
            raise ModelLoadError(
                f"model generation {generation.number} is {generation.model_id}, but {generation.model!r} "
                f"(revision {generation.revision}) loads here as {encoder.model_id}"
            )
        return chosen

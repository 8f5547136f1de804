"""The one configuration object: every knob, from env vars prefixed ``SIMSTREAM_``.

It lives in ``schemas`` because its names are a contract too: the compose file, the Kubernetes
manifests and users' environments all spell them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_TEXT_TEMPLATE = "{title}. {brand}. {category}. {attributes}. {description}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMSTREAM_", frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    # Extra librdkafka options passed through verbatim (JSON object in the env var).
    kafka_extra: dict[str, str] = Field(default_factory=dict)
    input_topic: str = "products"
    output_topic: str = "similar-items"
    dlq_topic: str = "products.dlq"
    group_id: str = "simstream"
    exactly_once: bool = False
    # Larger input records are dead-lettered as too_large (Kafka's default message.max.bytes is ~1 MiB).
    max_event_bytes: int = Field(default=1_048_576, ge=1024)

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_prefix: str = "simstream:"
    index_name: str = "simstream-idx-v1"
    index_alias: str = "simstream-idx"
    hnsw_m: int = Field(default=16, ge=2)
    hnsw_ef_construction: int = Field(default=200, ge=1)
    hnsw_ef_runtime: int = Field(default=100, ge=1)
    # FLAT: exact (brute-force) KNN, for small catalogs and exactness checks; HNSW: approximate, fast.
    vector_algorithm: Literal["HNSW", "FLAT"] = "HNSW"

    # --- Model and batching ------------------------------------------------------------------
    model: str = DEFAULT_MODEL  # a Hugging Face model name or a local folder; never fetched from a hub
    model_revision: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_seq_length: int = Field(default=256, ge=8)
    text_template: str = DEFAULT_TEXT_TEMPLATE
    batch_max_items: int = Field(default=64, ge=1)
    batch_max_tokens: int = Field(default=8192, ge=16)
    batch_max_wait_ms: int = Field(default=200, ge=0)
    poll_max_records: int = Field(default=500, ge=1)
    # Padded tokens per forward pass inside one encode() call; None: 2048 on CPU (attention scores stay
    # in cache, measured faster than 8192), batch_max_tokens on CUDA.
    encoder_chunk_tokens: int | None = Field(default=None, ge=16)
    encoder_threads: int | None = Field(default=None, ge=1)  # torch CPU threads; None: the usable cores

    # --- Similarity --------------------------------------------------------------------------
    top_k: int = Field(default=20, ge=1)
    same_category_only: bool = False
    min_score: float | None = None
    # Hybrid scoring (simstream.core.hybrid): the dense top-`rerank_candidates` re-ranked with lexical
    # evidence; both weights 0 means plain cosine. Chosen on Abt-Buy with `simstream eval`.
    hybrid_code_weight: float = Field(default=0.5, ge=0)
    hybrid_lexical_weight: float = Field(default=0.25, ge=0)
    rerank_candidates: int = Field(default=50, ge=1)
    # Reverse-neighbour refresh (design.md §4): recompute the lists a change can alter, not only its own.
    refresh_enabled: bool = True
    refresh_fanout: int = Field(default=50, ge=0)
    list_score_epsilon: float = Field(default=1e-4, ge=0)

    # --- Observability -----------------------------------------------------------------------
    metrics_port: int | None = None
    log_level: str = "INFO"

    # --- Local stack (``simstream dev``) -----------------------------------------------------
    dev_state_dir: Path = Path(".devstack")
    dev_kafka_port: int = 9092
    dev_kafka_controller_port: int = 9093
    dev_redis_port: int = 6379
    dev_redis_aof: bool = True
    dev_kafka_version: str = "4.1.1"
    dev_start_timeout_s: float = 120.0
    # None: ~/.cache/simstream/kafka-<version> ($XDG_CACHE_HOME honoured), outside the repo so CI reuses it.
    dev_kafka_cache_dir: Path | None = None
    # RediSearch WORKERS: 0 indexes vectors inside HSET (a KNN right after a write sees it).
    dev_redis_search_workers: int = Field(default=0, ge=0)
    dev_stop_timeout_s: float = Field(default=30.0, gt=0)

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for logs and ``simstream config``."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        # Credentials can also hide in the Redis URL (redis://user:pass@host).
        shown["redis_url"] = mask_url_password(self.redis_url)
        return shown


def mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':**********' if colon else ''}@{host}"


def kafka_client_config(settings: Settings) -> dict[str, str | int | float | bool]:
    """librdkafka options shared by every client: bootstrap, security, then the pass-through extras."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    config.update(settings.kafka_extra)
    return config

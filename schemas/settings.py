"""The one configuration object: every knob, from env vars prefixed ``SIMSTREAM_``.

It lives in ``schemas`` because its names are a contract too: the compose file, the Kubernetes
manifests and users' environments all spell them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Chosen by `simstream eval` on Abt-Buy: descriptions dilute the title's evidence (dense cross-shop
# recall@1 0.681 with, 0.718 without; whole catalog 0.28 vs 0.36) and triple the tokens to encode.
DEFAULT_TEXT_TEMPLATE = "{title}. {brand}. {category}. {attributes}"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise echo every input, secrets included.
    # allow_inf_nan: a NaN threshold or timeout would compare false everywhere and silently disable it.
    model_config = SettingsConfigDict(
        env_prefix="SIMSTREAM_", frozen=True, extra="ignore", hide_input_in_errors=True, allow_inf_nan=False
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    # Mutual TLS: the client's certificate and private key (PEM files), the key's passphrase if any.
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # "https" checks the broker's host name against its certificate (librdkafka's default); "none" skips it.
    kafka_ssl_endpoint_identification: Literal["https", "none"] | None = None
    # Extra librdkafka options passed through verbatim (JSON object in the env var); they override ours.
    kafka_extra: dict[str, str] = Field(default_factory=dict)
    # Compression of what our producers write. gzip: the one codec every mainstream client reads without
    # plugins (kafkajs has only gzip built in; Java, librdkafka, Go and .NET clients read all five).
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"
    # How long start-up waits for the brokers to answer before giving up with `cannot start`.
    kafka_start_timeout_s: float = Field(default=30.0, gt=0)
    input_topic: str = "products"
    output_topic: str = "similar-items"
    dlq_topic: str = "products.dlq"
    group_id: str = "simstream"
    exactly_once: bool = False
    # This instance's stable name (a pod name): in exactly-once mode it names the transactional.id,
    # so a restarted instance fences its killed predecessor and aborts its open transaction at once
    # (unset: a random id, and a dead instance's transaction blocks read_committed readers until
    # transaction_timeout_ms). Two live instances must never share one.
    worker_id: str | None = None
    transaction_timeout_ms: int = Field(default=30_000, ge=1000)
    # Larger input records are dead-lettered as too_large (Kafka's default message.max.bytes is ~1 MiB).
    max_event_bytes: int = Field(default=1_048_576, ge=1024)

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    # TLS: on when this is true or the URL is rediss://. CA bundle, and the client cert/key for mutual TLS.
    redis_tls: bool = False
    redis_tls_ca: str | None = None
    redis_tls_cert: str | None = None
    redis_tls_key: str | None = None
    redis_tls_check_hostname: bool = True
    redis_prefix: str = "simstream:"
    # Where the product hashes and version fences of the model in use live (core/generations); None:
    # redis_prefix. Set from Redis by `simstream model` generations, not by hand.
    redis_catalog_prefix: str | None = None
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
    # evidence; both weights 0 means plain cosine. Equal weights, checked on one half of Abt-Buy's
    # matches and reported on the other (`simstream eval --half 1|2`, README "What a similar-items list is").
    hybrid_code_weight: float = Field(default=1.0, ge=0)
    hybrid_lexical_weight: float = Field(default=1.0, ge=0)
    rerank_candidates: int = Field(default=50, ge=1)
    # Pool members kept beyond rerank_candidates (core/pools): a change that pushes members out needs a
    # new search only once the slack is used up. 16 kept searches under 1 per 100 updates (bench refresh).
    pool_slack: int = Field(default=16, ge=0)
    # Reverse-neighbour refresh (design.md §4): recompute the lists a change can alter, not only its own.
    refresh_enabled: bool = True
    # A worker starting on an empty index defers list work while the backlog streams in, then builds
    # every list at once in blocks (core/first_load, core/bulk_lists) when its partitions are drained.
    first_load_bulk: bool = True
    refresh_fanout: int = Field(default=50, ge=0)
    list_score_epsilon: float = Field(default=1e-4, ge=0)

    # --- Observability -----------------------------------------------------------------------
    metrics_port: int | None = None  # /metrics and /healthz; None: no server, 0: any free port
    metrics_host: str = "0.0.0.0"  # all interfaces: the scraper lives in another pod or container
    metrics_lag_interval_s: float = Field(default=5.0, gt=0)  # consumer-lag gauge refresh period
    # How often the worker compares the input offsets Redis holds with those it committed, for
    # partitions without new records (each batch checks its own): a Redis that lost writes is replayed.
    redis_position_check_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"

    # --- Local stack (``simstream dev``) -----------------------------------------------------
    dev_state_dir: Path = Path(".devstack")
    dev_kafka_port: int = 9092
    dev_kafka_controller_port: int = 9093
    # Nodes of the local Kafka: 1, or a KRaft cluster of combined broker+controller nodes (all voters),
    # with replication factor min(3, N) and min.insync.replicas one less.
    dev_kafka_brokers: int = Field(default=1, ge=1, le=5)
    # Client and controller ports of nodes 2..N (extra ones unused); empty: each node takes the two ports
    # after the previous node's.
    dev_kafka_peer_ports: list[int] = Field(default_factory=list)
    dev_kafka_peer_controller_ports: list[int] = Field(default_factory=list)
    dev_redis_port: int = 6379
    dev_redis_aof: bool = True
    # When the AOF reaches the disk: everysec (Redis's default) can lose the last second of acknowledged
    # writes in an OS crash; the worker replays them (consumers/redis_position.py).
    dev_redis_appendfsync: Literal["always", "everysec", "no"] = "everysec"
    dev_kafka_version: str = "4.1.1"
    dev_start_timeout_s: float = 120.0
    # None: ~/.cache/simstream/kafka-<version> ($XDG_CACHE_HOME honoured), outside the repo so CI reuses it.
    dev_kafka_cache_dir: Path | None = None
    # RediSearch WORKERS: 0 indexes vectors inside HSET (a KNN right after a write sees it).
    dev_redis_search_workers: int = Field(default=0, ge=0)
    dev_stop_timeout_s: float = Field(default=30.0, gt=0)
    # An ACL user for the local Redis: when set, `dev up` creates it and turns the passwordless default
    # user off (set redis_username/redis_password to the same values for clients).
    dev_redis_acl_user: str | None = None
    dev_redis_acl_password: SecretStr | None = None
    # An extra SASL_PLAINTEXT listener (mechanism PLAIN) with one user on the local broker, beside PLAINTEXT.
    dev_kafka_sasl_port: int | None = None
    dev_kafka_sasl_username: str | None = None
    dev_kafka_sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        problems = [
            *_kafka_security_problems(self),
            *_redis_security_problems(self),
            *_dev_kafka_sasl_problems(self),
            *_dev_kafka_cluster_problems(self),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def redis_tls_enabled(self) -> bool:
        return self.redis_tls or self.redis_url.startswith("rediss://")

    def dev_kafka_node_ports(self) -> list[tuple[int, int]]:
        """(client port, controller port) of each local Kafka node, node 1 first."""
        count = self.dev_kafka_brokers
        ports = self.dev_kafka_peer_ports or [self.dev_kafka_port + 2 * i for i in range(1, count)]
        controllers = self.dev_kafka_peer_controller_ports or [
            self.dev_kafka_controller_port + 2 * i for i in range(1, count)
        ]
        peers = list(zip(ports, controllers, strict=False))[: count - 1]
        return [(self.dev_kafka_port, self.dev_kafka_controller_port), *peers]

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr/str show the masked view: SecretStr alone would leave the URL's and kafka_extra's secrets.
        return list(self.masked().items())

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for logs and ``simstream config``."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = MASK
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        # Credentials can also hide in the Redis URL (redis://user:pass@host) and in pass-through options.
        shown["redis_url"] = mask_url_password(self.redis_url)
        shown["kafka_extra"] = {
            key: MASK if is_secret_option(key) else value for key, value in self.kafka_extra.items()
        }
        return shown


MASK = "**********"
# librdkafka options whose values are secrets: sasl.password, ssl.key.password, ssl.keystore.password,
# ssl.key.pem (the private key itself), sasl.oauthbearer.client.secret, sasl.oauthbearer.config, ...
_SECRET_OPTION_PARTS = ("password", "secret", "token", "credential", "key.pem", "oauthbearer.config", "jaas")


def is_secret_option(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_OPTION_PARTS)


def mask_url_password(url: str) -> str:
    """The URL with the password of its user-info and of a ``password=`` query parameter masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, qmark, query = rest.partition("?")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user, colon, _ = creds.partition(":")
        rest = f"{user}{':' + MASK if colon else ''}@{host}"
    if qmark:
        params = [param.partition("=") for param in query.split("&")]
        query = "&".join(f"{name}{eq}{MASK if is_secret_option(name) and eq else value}" for name, eq, value in params)
    return f"{scheme}://{rest}{qmark}{query}"


def _kafka_security_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    protocol = settings.kafka_security_protocol
    mechanism = settings.kafka_sasl_mechanism
    uses_sasl = protocol.startswith("SASL_")
    extra_mechanism = any(key in settings.kafka_extra for key in ("sasl.mechanism", "sasl.mechanisms"))
    if uses_sasl and mechanism is None and not extra_mechanism:
        problems.append(
            f"kafka_security_protocol={protocol} needs kafka_sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )
    if mechanism is not None:
        missing = [
            name
            for name, value in (
                ("kafka_sasl_username", settings.kafka_sasl_username),
                ("kafka_sasl_password", settings.kafka_sasl_password),
            )
            if not value
        ]
        if missing:
            problems.append(f"kafka_sasl_mechanism={mechanism} needs {' and '.join(missing)}")
        if not uses_sasl:
            problems.append(
                f"kafka_sasl_mechanism={mechanism} has no effect with kafka_security_protocol={protocol}; "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
    elif (settings.kafka_sasl_username or settings.kafka_sasl_password) and not extra_mechanism:
        problems.append("kafka_sasl_username/kafka_sasl_password are set but kafka_sasl_mechanism is not")
    tls_files = {
        "kafka_ssl_ca_location": settings.kafka_ssl_ca_location,
        "kafka_ssl_certificate_location": settings.kafka_ssl_certificate_location,
        "kafka_ssl_key_location": settings.kafka_ssl_key_location,
        "kafka_ssl_key_password": settings.kafka_ssl_key_password,
        "kafka_ssl_endpoint_identification": settings.kafka_ssl_endpoint_identification,
    }
    given = [name for name, value in tls_files.items() if value is not None]
    if given and not protocol.endswith("SSL"):
        problems.append(f"{', '.join(given)} need kafka_security_protocol SSL or SASL_SSL (it is {protocol})")
    if (settings.kafka_ssl_certificate_location is None) != (settings.kafka_ssl_key_location is None):
        problems.append("kafka_ssl_certificate_location and kafka_ssl_key_location go together (mutual TLS)")
    if settings.kafka_ssl_key_password is not None and settings.kafka_ssl_key_location is None:
        problems.append("kafka_ssl_key_password is set but kafka_ssl_key_location is not")
    return problems


def _redis_security_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    tls_options = {
        "redis_tls_ca": settings.redis_tls_ca,
        "redis_tls_cert": settings.redis_tls_cert,
        "redis_tls_key": settings.redis_tls_key,
    }
    given = [name for name, value in tls_options.items() if value is not None]
    if given and not settings.redis_tls_enabled:
        problems.append(f"{', '.join(given)} need redis_tls=true or a rediss:// redis_url")
    if settings.redis_tls and settings.redis_url.startswith("unix://"):
        problems.append("redis_tls=true cannot apply to a unix:// redis_url")
    if (settings.redis_tls_cert is None) != (settings.redis_tls_key is None):
        problems.append("redis_tls_cert and redis_tls_key go together (mutual TLS)")
    if (settings.dev_redis_acl_user is None) != (settings.dev_redis_acl_password is None):
        problems.append("dev_redis_acl_user and dev_redis_acl_password go together")
    if settings.dev_redis_acl_user is not None and not _is_acl_name(settings.dev_redis_acl_user):
        problems.append("dev_redis_acl_user may hold only letters, digits, '-', '_' and '.'")
    password = settings.dev_redis_acl_password
    if password is not None and not password.get_secret_value():
        problems.append("dev_redis_acl_password is set but empty")
    return problems


def _dev_kafka_sasl_problems(settings: Settings) -> list[str]:
    fields = (settings.dev_kafka_sasl_port, settings.dev_kafka_sasl_username, settings.dev_kafka_sasl_password)
    if all(value is None for value in fields):
        return []
    if any(value is None for value in fields):
        return ["dev_kafka_sasl_port, dev_kafka_sasl_username and dev_kafka_sasl_password go together"]
    problems: list[str] = []
    if not _is_acl_name(settings.dev_kafka_sasl_username or ""):
        problems.append("dev_kafka_sasl_username may hold only letters, digits, '-', '_' and '.'")
    # The broker's JAAS line quotes the password: a quote or backslash would end or escape it.
    password = settings.dev_kafka_sasl_password.get_secret_value() if settings.dev_kafka_sasl_password else ""
    if not password or any(char in password for char in '"\\;\n'):
        problems.append("dev_kafka_sasl_password must be non-empty, without quotes, backslashes, ';' or newlines")
    return problems


def _dev_kafka_cluster_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    peers = settings.dev_kafka_brokers - 1
    for name in ("dev_kafka_peer_ports", "dev_kafka_peer_controller_ports"):
        given = len(getattr(settings, name))
        if 0 < given < peers:
            problems.append(f"{name} lists {given} ports; dev_kafka_brokers={settings.dev_kafka_brokers} needs {peers}")
    ports = [port for pair in settings.dev_kafka_node_ports() for port in pair]
    if settings.dev_kafka_sasl_port is not None:
        ports.append(settings.dev_kafka_sasl_port)
        if peers:
            problems.append("dev_kafka_sasl_port needs dev_kafka_brokers=1 (the SASL listener is single-node only)")
    if len(set(ports)) != len(ports):
        problems.append(f"the local Kafka's ports (dev_kafka_*port*) must all differ: {ports}")
    return problems


def _is_acl_name(name: str) -> bool:
    # Redis ACL rules are space-separated words: a name with spaces or rule characters would change the rule.
    return bool(name) and all(char.isalnum() or char in "-_." for char in name)


def kafka_client_id(settings: Settings) -> str:
    """What brokers and the consumer-group view call this instance: the worker id, else host and pid."""
    return settings.worker_id or f"simstream-{settings.group_id}-{socket.gethostname()}-{os.getpid()}"


def kafka_client_config(
    settings: Settings, defaults: Mapping[str, str | int | float | bool] | None = None
) -> dict[str, str | int | float | bool]:
    """librdkafka options shared by every client: bootstrap, identity, security, one kind of client's
    ``defaults``, then the pass-through extras (which override any of them)."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": kafka_client_id(settings),
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
    if settings.kafka_ssl_certificate_location:
        config["ssl.certificate.location"] = settings.kafka_ssl_certificate_location
    if settings.kafka_ssl_key_location:
        config["ssl.key.location"] = settings.kafka_ssl_key_location
    if settings.kafka_ssl_key_password:
        config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    if settings.kafka_ssl_endpoint_identification:
        config["ssl.endpoint.identification.algorithm"] = settings.kafka_ssl_endpoint_identification
    config.update(defaults or {})
    config.update(settings.kafka_extra)
    return config

"""The deployment files (compose, Dockerfile, Kubernetes + KEDA) are valid and agree with the code.

No Docker engine or cluster runs here, so the files are checked against their published JSON Schemas
(vendored in deploy/schemas, see its README) and against the names the code defines: every
``SIMSTREAM_*`` variable is a Settings field, the probes hit ``/healthz`` on the metrics port, and the
worker command exists.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from simstream.cli import build_parser
from simstream.schemas.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
K8S_DIR = REPO / "deploy" / "k8s"
SCHEMA_DIR = REPO / "deploy" / "schemas"
DEPLOYMENT_FILES = [COMPOSE_FILE, DOCKERFILE, *sorted(K8S_DIR.glob("*.yaml"))]

METRICS_PORT = 9400
HEALTH_PATH = "/healthz"
SETTING_NAME = re.compile(r"\bSIMSTREAM_[A-Z0-9][A-Z0-9_]*\b")
# Parameters of KEDA's Kafka scaler (keda.sh/docs/scalers/apache-kafka); each may also be given as
# <name>FromEnv, read from the scale target's container environment.
KEDA_KAFKA_PARAMETERS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
}

Json = dict[str, Any]


# --- helpers ----------------------------------------------------------------------------------


def load_json(path: Path) -> Json:
    loaded: Json = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load_compose() -> Json:
    loaded: Json = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def load_manifests() -> list[Json]:
    """Every Kubernetes object in deploy/k8s (the kustomization is a build file, not an object)."""
    manifests: list[Json] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            manifests.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return manifests


def only(manifests: list[Json], kind: str) -> Json:
    matching = [m for m in manifests if m["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def compose_env(service: Json) -> dict[str, str]:
    """A service's environment, whichever of the two Compose spellings (map or KEY=VALUE list) it uses."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def kubernetes_validator(api_version: str, kind: str) -> Draft202012Validator:
    bundle = load_json(SCHEMA_DIR / "kubernetes-strict.json")
    name = bundle["x-kinds"].get(f"{api_version}/{kind}")
    assert name is not None, f"no vendored schema for {api_version} {kind}: add it in bundle_kubernetes.py"
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": bundle["$defs"]})


def manifest_validator(manifest: Json) -> Draft202012Validator:
    if manifest["apiVersion"].startswith("keda.sh/"):
        return Draft202012Validator(load_json(SCHEMA_DIR / "keda-scaledobject.json"))
    return kubernetes_validator(manifest["apiVersion"], manifest["kind"])


def schema_errors(validator: Any, document: Json) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


def compose_validator() -> Any:
    schema = load_json(SCHEMA_DIR / "compose-spec.json")
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def unknown_setting_names(names: Iterable[str]) -> set[str]:
    """Names that Settings would silently ignore (its env prefix, case-insensitive, like pydantic-settings)."""
    prefix = str(Settings.model_config.get("env_prefix", "")).lower()
    fields = {name.lower() for name in Settings.model_fields}
    return {name for name in names if not (name.lower().startswith(prefix) and name.lower()[len(prefix) :] in fields)}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as the container would build them from this environment."""
    for name in list(os.environ):
        if name.upper().startswith("SIMSTREAM_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("SIMSTREAM_"):
            monkeypatch.setenv(name, value)
    return Settings()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile_instructions() if key == keyword]


def resolve_container_port(container: Json, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"container {container['name']} has no port named {port!r}"
    return int(named[0])


# --- schemas ----------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose_validator(), load_compose()) == []


def test_compose_schema_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(load_compose())
    broken["services"]["worker"]["healtcheck"] = broken["services"]["worker"].pop("healthcheck")

    assert any("healtcheck" in error for error in schema_errors(compose_validator(), broken))


def test_every_manifest_follows_its_schema() -> None:
    manifests = load_manifests()

    assert {m["kind"] for m in manifests} == {"ConfigMap", "Deployment", "Service", "ScaledObject"}
    for manifest in manifests:
        errors = schema_errors(manifest_validator(manifest), manifest)
        assert errors == [], f"{manifest['kind']} {manifest['metadata']['name']}: {errors}"


@pytest.mark.parametrize(
    ("kind", "mistake"),
    [
        ("Deployment", lambda m: m["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={})),
        ("Deployment", lambda m: m["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="x")),
        ("Service", lambda m: m["spec"].update(selectr={})),
        ("ScaledObject", lambda m: m["spec"].update(maxReplicas=3)),
        ("ScaledObject", lambda m: m["spec"]["triggers"][0].pop("metadata")),
    ],
)
def test_manifest_schemas_reject_mistakes(kind: str, mistake: Any) -> None:
    broken = copy.deepcopy(only(load_manifests(), kind))
    mistake(broken)

    assert schema_errors(manifest_validator(broken), broken) != []


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}

    assert sorted(kustomization["resources"]) == sorted(on_disk)


# --- settings names ---------------------------------------------------------------------------


def test_the_settings_name_check_catches_an_unknown_name() -> None:
    assert unknown_setting_names({"SIMSTREAM_GROUP_ID", "simstream_metrics_port", "SIMSTREAM_NO_SUCH_KNOB"}) == {
        "SIMSTREAM_NO_SUCH_KNOB"
    }


@pytest.mark.parametrize("path", DEPLOYMENT_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_simstream_variable_is_a_settings_field(path: Path) -> None:
    names = set(SETTING_NAME.findall(path.read_text(encoding="utf-8")))

    assert unknown_setting_names(names) == set()


def test_the_files_do_name_settings() -> None:
    # Guards the test above against a pattern that silently matches nothing.
    for path in (COMPOSE_FILE, DOCKERFILE, K8S_DIR / "configmap.yaml", K8S_DIR / "scaledobject.yaml"):
        assert SETTING_NAME.search(path.read_text(encoding="utf-8")), path


@pytest.mark.parametrize("service", ["worker", "worker-gpu"])
def test_compose_worker_environment_builds_valid_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(compose_env(load_compose()["services"][service]), monkeypatch)

    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.metrics_port == METRICS_PORT
    assert settings.device == ("cuda" if service == "worker-gpu" else "cpu")


def test_configmap_builds_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(only(load_manifests(), "ConfigMap")["data"], monkeypatch)

    assert settings.metrics_port == METRICS_PORT
    assert settings.input_topic == "products"


# --- compose ----------------------------------------------------------------------------------


def test_compose_runs_kafka_in_kraft_mode_and_redis_8() -> None:
    services = load_compose()["services"]
    kafka_env = compose_env(services["kafka"])

    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert services["redis"]["image"].startswith("redis:8")
    for name in ("kafka", "redis", "worker", "worker-gpu"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_worker_waits_for_healthy_services_and_topics() -> None:
    services = load_compose()["services"]

    for name in ("worker", "worker-gpu"):
        assert services[name]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }
        assert services[name]["build"]["context"] == "."
        assert (REPO / services[name]["build"]["dockerfile"]).is_file()


def test_compose_worker_reaches_kafka_on_an_advertised_listener() -> None:
    services = load_compose()["services"]
    advertised = compose_env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    bootstrap = compose_env(services["worker"])["SIMSTREAM_KAFKA_BOOTSTRAP"]

    assert any(listener.endswith(f"://{bootstrap}") for listener in advertised)


def test_compose_worker_healthcheck_probes_healthz_on_the_metrics_port() -> None:
    services = load_compose()["services"]

    for name in ("worker", "worker-gpu"):
        port = compose_env(services[name])["SIMSTREAM_METRICS_PORT"]
        assert f":{port}{HEALTH_PATH}" in " ".join(services[name]["healthcheck"]["test"])
        assert any(str(mapping).endswith(f":{port}") for mapping in services[name]["ports"])


def _created_topics() -> dict[str, list[str]]:
    """Topic name -> the kafka-topics.sh arguments the `topics` service creates it with."""
    script = "\n".join(load_compose()["services"]["topics"]["command"])
    created: dict[str, list[str]] = {}
    for line in script.splitlines():
        args = shlex.split(line)
        if args[:2] == ["create", "--topic"]:
            created[args[2]] = args[3:]
    return created


def test_compose_creates_the_topics_the_worker_uses() -> None:
    created = _created_topics()
    worker_env = compose_env(load_compose()["services"]["worker"])

    assert set(created) == {
        worker_env["SIMSTREAM_INPUT_TOPIC"],
        worker_env["SIMSTREAM_OUTPUT_TOPIC"],
        worker_env["SIMSTREAM_DLQ_TOPIC"],
    }
    products = created[worker_env["SIMSTREAM_INPUT_TOPIC"]]
    assert products[products.index("--partitions") + 1] == "6"
    assert "cleanup.policy=compact" in created[worker_env["SIMSTREAM_OUTPUT_TOPIC"]]


def test_compose_gpu_worker_reserves_an_nvidia_gpu() -> None:
    gpu = load_compose()["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]

    assert gpu["profiles"] == ["gpu"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "profiles" not in load_compose()["services"]["worker"]


def test_compose_build_args_are_declared_in_the_dockerfile() -> None:
    declared = {arg.split("=", 1)[0] for arg in dockerfile_values("ARG")}

    for name in ("worker", "worker-gpu"):
        assert set(load_compose()["services"][name]["build"].get("args", {})) <= declared


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_runs_simstream_run_as_a_non_root_user() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    entrypoint = json.loads(dockerfile_values("ENTRYPOINT")[-1])
    command = json.loads(dockerfile_values("CMD")[-1])

    assert dockerfile_values("FROM") == ["python:3.11-slim"]
    assert entrypoint == ["simstream"] and "simstream" in scripts
    assert command == ["run"] and build_parser().parse_args(command).command == "run"
    assert dockerfile_values("USER")[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_healthcheck_probes_healthz_on_the_metrics_port() -> None:
    env = " ".join(dockerfile_values("ENV"))

    assert f"SIMSTREAM_METRICS_PORT={METRICS_PORT}" in env
    assert HEALTH_PATH in dockerfile_values("HEALTHCHECK")[-1]
    assert str(METRICS_PORT) in dockerfile_values("EXPOSE")


# --- Kubernetes -------------------------------------------------------------------------------


def _worker_container(deployment: Json) -> Json:
    containers: list[Json] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_probes_hit_healthz_on_the_configured_metrics_port() -> None:
    manifests = load_manifests()
    container = _worker_container(only(manifests, "Deployment"))
    configured = int(only(manifests, "ConfigMap")["data"]["SIMSTREAM_METRICS_PORT"])

    assert configured == METRICS_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == HEALTH_PATH, probe
        assert resolve_container_port(container, http["port"]) == configured, probe


def test_deployment_reads_the_configmap_and_only_references_secrets() -> None:
    manifests = load_manifests()
    container = _worker_container(only(manifests, "Deployment"))

    assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [
        only(manifests, "ConfigMap")["metadata"]["name"]
    ]
    assert container["args"] == ["run"]
    for variable in container.get("env", []):
        if any(word in variable["name"] for word in ("PASSWORD", "USERNAME", "SECRET")):
            assert "value" not in variable and "secretKeyRef" in variable["valueFrom"], variable["name"]
    assert not any(m["kind"] == "Secret" for m in manifests), "no Secret (and no secret value) is committed"


def test_metrics_service_selects_the_worker_pods_on_the_metrics_port() -> None:
    manifests = load_manifests()
    deployment = only(manifests, "Deployment")
    service = only(manifests, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == METRICS_PORT
    assert resolve_container_port(_worker_container(deployment), port["targetPort"]) == METRICS_PORT


def test_keda_scales_the_worker_on_the_lag_of_its_consumer_group() -> None:
    manifests = load_manifests()
    deployment = only(manifests, "Deployment")
    config = only(manifests, "ConfigMap")["data"]
    scaled = only(manifests, "ScaledObject")["spec"]

    assert scaled["scaleTargetRef"]["kind"] == "Deployment"
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["scaleTargetRef"]["envSourceContainerName"] == _worker_container(deployment)["name"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert {key.removesuffix("FromEnv") for key in metadata} <= KEDA_KAFKA_PARAMETERS
    # *FromEnv values name variables of the container: here, keys of the ConfigMap it loads.
    assert metadata["consumerGroupFromEnv"] == "SIMSTREAM_GROUP_ID"
    assert config[metadata["topicFromEnv"]] == "products"
    assert config[metadata["bootstrapServersFromEnv"]] == config["SIMSTREAM_KAFKA_BOOTSTRAP"]
    assert int(metadata["lagThreshold"]) > 0


def test_keda_never_adds_more_workers_than_input_partitions() -> None:
    products = _created_topics()["products"]
    partitions = int(products[products.index("--partitions") + 1])
    scaled = only(load_manifests(), "ScaledObject")["spec"]

    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions

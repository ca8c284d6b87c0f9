"""The deployment artifacts in ``deploy/`` keep their promises; no Docker or cluster needed.

- Compose: the services, ports, healthchecks and mounts, and the mounted config
  loads with exactly the environment the container gets.
- Dockerfile: CPU-only torch at the project's pin, non-root, classifier loaded at build,
  a healthcheck that really answers, and a command the CLI accepts.
- Helm: the chart is rendered by Helm's own engine (``helm-python-sdk``) with
  default and custom values, every object is checked against the Kubernetes
  API schemas (``kubernetes-validate``), and the config it mounts loads.
- Grafana: the dashboard queries only metrics and labels the proxy exports.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from router.cli import build_parser
from router.config import build_config, load_config
from router.http.server import create_app
from router.proxy import Router
from router.upstream.simulator import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "thinkroute"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "thinkroute-dashboard.json"
CONFIG_PATH = "/etc/thinkroute/config.yaml"
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest
# whose schemas kubernetes-validate bundles.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.utils.latest_version())
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# -- helpers ------------------------------------------------------------------------


def serve_args_are_valid(args: list[str]) -> None:
    """The arguments parse with the real ``thinkroute`` CLI (argparse exits on a bad flag)."""
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"thinkroute rejects {args}") from exc
    assert parsed.command == "serve"
    assert parsed.config == CONFIG_PATH
    assert (parsed.host, parsed.port) == ("0.0.0.0", 8000)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}``, recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", replace, value)


def env_references(path: Path) -> set[str]:
    """Variables a config file references in its values (comments do not count)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        elif isinstance(value, str):
            yield from ENV_REFERENCE.findall(value)

    return set(walk(yaml.safe_load(path.read_text(encoding="utf-8"))))


def run_healthcheck(code: str, port: int) -> int:
    """Run a healthcheck one-liner against a server on ``port`` instead of 8000."""
    assert "127.0.0.1:8000/" in code
    code = code.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


@pytest.fixture(scope="module")
def live_apps() -> Iterator[dict[str, BackgroundServer]]:
    """The real app, once before the classifier is loaded and once after."""
    config = build_config({})
    loading = Router(config=config, classifier_loader=lambda: pytest.fail("must not load"))
    ready = Router(config=config, classifier=object())  # type: ignore[arg-type]
    with (
        BackgroundServer(create_app(loading, load_classifier=False)) as loading_server,
        BackgroundServer(create_app(ready, load_classifier=False)) as ready_server,
    ):
        yield {"loading": loading_server, "ready": ready_server}


# -- Dockerfile ---------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions as (KEYWORD, arguments) with continuations joined, one list per stage."""
    stages: list[list[tuple[str, str]]] = [[]]
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages[1:]  # what precedes the first FROM (global ARGs) is not a stage


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for kw, arguments in stage if kw == keyword]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for arguments in instructions(stage, "ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_dockerfile_installs_the_cpu_torch_the_project_pins_before_the_project():
    (pin,) = [d for d in project()["dependencies"] if d.replace(" ", "").startswith("torch==")]
    builder = dockerfile_stages()[0]
    runs = instructions(builder, "RUN")
    torch_run = next(i for i, run in enumerate(runs) if "torch==" in run)
    assert pin.replace(" ", "") in runs[torch_run].split()
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_run]
    project_run = next(i for i, run in enumerate(runs) if "pip install '.[otel]'" in run)
    assert torch_run < project_run, "torch must be installed from the CPU index before the project"
    assert "torch.version.cuda is None" in runs[project_run]


def test_the_image_carries_the_tracing_extra_so_tracing_needs_no_derived_image():
    runs = " ".join(instructions(dockerfile_stages()[0], "RUN"))
    (extras,) = re.findall(r"pip install '\.\[([\w,]+)\]'", runs)
    assert "otel" in extras.split(",") and "otel" in project()["optional-dependencies"]


def test_dockerfile_is_multi_stage_and_copies_the_whole_project():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert " AS builder" in stages[0][0][1]
    runtime = stages[-1]
    assert any(
        arguments.startswith("--from=builder") for arguments in instructions(runtime, "COPY")
    )
    sources = {
        part.rstrip("/")
        for arguments in instructions(stages[0], "COPY")
        if not arguments.startswith("--from")
        for part in arguments.split()[:-1]
    }
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in sources, f"the image would miss the package {pattern}"
    assert {"pyproject.toml", project()["readme"]} <= sources
    # The build context sends only what is re-included after "*" in the ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is not sent"


def test_dockerfile_runs_as_a_non_root_user_it_creates():
    runtime = dockerfile_stages()[-1]
    user = instructions(runtime, "USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert any("useradd" in run and user in run for run in instructions(runtime, "RUN"))
    # The Helm chart runs the pods as the same uid.
    uid = next(a for a in instructions(runtime, "ARG") if a.startswith("UID="))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid.removeprefix("UID="))
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_dockerfile_sets_offline_defaults_and_loads_the_classifier_before_dropping_root():
    runtime = dockerfile_stages()[-1]
    env = env_of(runtime)
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["THINKROUTE_CACHE_DIR"].startswith("/")
    keywords = [kw for kw, _ in runtime]
    runs = [(i, a) for i, (kw, a) in enumerate(runtime) if kw == "RUN"]
    warm_index, warm_up = next((i, a) for i, a in runs if "DifficultyClassifier" in a)
    assert warm_index < keywords.index("USER"), "warm up while the cache dir is writable"
    assert "$THINKROUTE_CACHE_DIR" in warm_up
    # The Python it runs is valid and calls what the classifier really offers.
    code = shlex.split(warm_up)[shlex.split(warm_up).index("-c") + 1]
    called = {n.attr for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Attribute)}
    assert {"load", "score_messages"} <= called
    from classifier.model import DifficultyClassifier

    assert callable(DifficultyClassifier.load) and callable(DifficultyClassifier.score_messages)


def test_dockerfile_starts_thinkroute_and_exposes_its_port():
    runtime = dockerfile_stages()[-1]
    entrypoint = json.loads(instructions(runtime, "ENTRYPOINT")[-1])
    assert entrypoint == ["thinkroute"] and "thinkroute" in project()["scripts"]
    command = json.loads(instructions(runtime, "CMD")[-1])
    build_parser().parse_args(command)  # the default command is one the CLI accepts
    assert instructions(runtime, "EXPOSE") == ["8000"]


def test_dockerfile_healthcheck_answers_like_the_probe_it_is(live_apps):
    runtime = dockerfile_stages()[-1]
    (healthcheck,) = instructions(runtime, "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"] and "urllib" in argv[2] and "/healthz" in argv[2]
    # Liveness: healthy as soon as the server answers, classifier loaded or not.
    assert run_healthcheck(argv[2], live_apps["loading"].port) == 0
    assert run_healthcheck(argv[2], live_apps["ready"].port) == 0


# -- Compose ------------------------------------------------------------------------


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), env or {})


def test_compose_names_redis_and_the_proxy():
    services = compose()["services"]
    assert {"redis", "thinkroute"} <= set(services)
    redis = services["redis"]
    assert redis["image"] == "redis:7-alpine"
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert redis["volumes"][0].split(":")[0] in compose()["volumes"]


def test_compose_runs_the_proxy_against_the_redis_service():
    proxy = compose()["services"]["thinkroute"]
    assert proxy["depends_on"]["redis"]["condition"] == "service_healthy"
    assert proxy["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert proxy["ports"] == ["8000:8000"]
    assert compose({"THINKROUTE_PORT": "9000"})["services"]["thinkroute"]["ports"] == ["9000:8000"]
    serve_args_are_valid(proxy["command"])
    build = proxy["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_healthcheck_waits_for_readiness(live_apps):
    check = compose()["services"]["thinkroute"]["healthcheck"]
    assert check["start_period"]
    assert check["test"][:3] == ["CMD", "python", "-c"]
    assert "/readyz" in check["test"][3]
    assert run_healthcheck(check["test"][3], live_apps["loading"].port) != 0
    assert run_healthcheck(check["test"][3], live_apps["ready"].port) == 0


@pytest.mark.parametrize(
    "shell_env",
    [{}, {"THINKROUTE_CONFIG": "./config.sim.yaml"}],
    ids=["compose-config", "sim-config"],
)
def test_compose_config_loads_with_the_environment_the_container_gets(shell_env):
    # Every variable the Compose file passes through is set in the user's shell.
    references = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    chosen_by_test = {"THINKROUTE_CONFIG", "THINKROUTE_PORT"}
    shell = {name: f"dummy-{name.lower()}-value" for name in references - chosen_by_test}
    shell |= shell_env
    proxy = compose(shell)["services"]["thinkroute"]
    (mount,) = [v for v in proxy["volumes"] if v.split(":")[1] == CONFIG_PATH]
    source, _, options = mount.partition(":")
    assert options.endswith(":ro")
    config_file = (COMPOSE.parent / source).resolve()
    assert config_file.is_file(), f"{source} does not exist"
    container_env = {k: str(v) for k, v in proxy["environment"].items()}
    missing = env_references(config_file) - set(container_env)
    assert not missing, f"{config_file.name} needs {missing}, which Compose does not pass"
    config = load_config(config_file, env=container_env)
    assert set(config.tiers) == {"fast", "reasoning"} and config.tenants


def test_compose_sim_profile_serves_the_port_config_sim_points_at():
    services = compose()["services"]
    sim = services["sim-upstream"]
    assert sim["profiles"] == ["sim"]
    assert sim["network_mode"] == "service:thinkroute"
    port = sim["command"][sim["command"].index("--port") + 1]
    for model in yaml.safe_load((DEPLOY / "config.sim.yaml").read_text())["model_list"]:
        assert model["litellm_params"]["api_base"].startswith(f"http://127.0.0.1:{port}/")


# -- Helm ---------------------------------------------------------------------------

# Kinds from CRDs, absent from the Kubernetes schemas; checked by hand below.
CRD_KINDS = {"ServiceMonitor"}


def render(values: dict[str, Any] | None = None, release: str = "tr") -> dict[str, list[dict]]:
    """Objects by kind, as `helm template` would make them."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=release, namespace="llm", is_install=True)
    objects: dict[str, list[dict]] = {}
    for path, text in manifests.items():
        if not path.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.setdefault(document["kind"], []).append(document)
    return objects


def one(objects: dict[str, list[dict]], kind: str) -> dict[str, Any]:
    (found,) = objects[kind]
    return found


def container(objects: dict[str, list[dict]]) -> dict[str, Any]:
    (found,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def assert_valid_kubernetes(objects: dict[str, list[dict]]) -> None:
    for kind, documents in objects.items():
        if kind in CRD_KINDS:
            continue
        for document in documents:
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    raise AssertionError(
                        f"{kind} invalid for Kubernetes {version}: {exc}"
                    ) from None


def assert_consistent(objects: dict[str, list[dict]]) -> None:
    """The objects point at each other: selectors, names, ports, config mount, probes."""
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    service = one(objects, "Service")
    assert service["spec"]["selector"] == selector
    main = container(objects)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": 8000}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    serve_args_are_valid(main["args"])
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    mount = next(m for m in main["volumeMounts"] if CONFIG_PATH.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == one(objects, "ConfigMap")["metadata"]["name"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in main["volumeMounts"])
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        for document in objects.get(kind, []):
            if kind == "HorizontalPodAutoscaler":
                target = document["spec"]["scaleTargetRef"]
                assert (target["kind"], target["name"]) == (
                    "Deployment",
                    deployment["metadata"]["name"],
                )
            else:
                assert document["spec"]["selector"]["matchLabels"] == selector


def pod_environment(objects: dict[str, list[dict]], secrets: Mapping[str, dict]) -> dict[str, str]:
    """What the container's environment would be, given the Secrets in the namespace."""
    env: dict[str, str] = {}
    for source in container(objects).get("envFrom", []):
        env |= secrets[source["secretRef"]["name"]]
    for variable in container(objects).get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def load_mounted_config(objects: dict[str, list[dict]], env: Mapping[str, str], tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"], encoding="utf-8")
    missing = env_references(path) - set(env)
    assert not missing, f"the mounted config needs {missing}, which the pod does not get"
    return load_config(path, env=env)


def chart_secrets(objects: dict[str, list[dict]]) -> dict[str, dict[str, str]]:
    return {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in objects.get("Secret", [])
    }


def test_chart_lints_clean():
    report = helm.lint(CHART, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_renders_valid_kubernetes_with_default_values(tmp_path):
    objects = render()
    assert set(objects) == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    }
    assert_valid_kubernetes(objects)
    assert_consistent(objects)
    deployment = one(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert one(objects, "PodDisruptionBudget")["apiVersion"] == "policy/v1"
    resources = container(objects)["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]

    secrets = chart_secrets(objects)
    env = pod_environment(objects, secrets)
    assert env["REDIS_URL"] == "redis://redis-master:6379/0"
    assert len(env["THINKROUTE_ADMIN_KEY"]) >= 32, "an empty admin key is generated"
    assert len(env["THINKROUTE_METRICS_KEY"]) >= 32, "so is the scrape key"
    config = load_mounted_config(objects, env, tmp_path)
    assert (config.redis.url, config.redis.cluster) == ("redis://redis-master:6379/0", False)
    assert config.tenants[0].api_keys == [env["THINKROUTE_API_KEY"]]


def test_chart_renders_for_a_redis_cluster_with_an_existing_secret_and_no_hpa(tmp_path):
    values = {
        "replicaCount": 3,
        "autoscaling": {"enabled": False},
        "redis": {"url": "redis://redis-cluster.data.svc:6379", "cluster": True},
        "secrets": {"existingSecret": "thinkroute-keys"},
        "image": {"repository": "registry.example.com/thinkroute", "tag": "1.2.3"},
        "podDisruptionBudget": {"minAvailable": 2},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "env": {"LOG_FORMAT": "json"},
    }
    objects = render(values, release="thinkroute")
    assert "Secret" not in objects and "HorizontalPodAutoscaler" not in objects
    assert_valid_kubernetes(objects)
    assert_consistent(objects)
    deployment = one(objects, "Deployment")
    assert deployment["metadata"]["name"] == "thinkroute"
    assert deployment["spec"]["replicas"] == 3
    assert container(objects)["image"] == "registry.example.com/thinkroute:1.2.3"
    assert one(objects, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": deployment["spec"]["selector"],
    }
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert {"port": "http", "path": "/metrics"}.items() <= endpoint.items()
    # Prometheus sends the scrape key from the operator's own Secret.
    assert endpoint["authorization"]["credentials"] == {
        "name": "thinkroute-keys",
        "key": "THINKROUTE_METRICS_KEY",
    }

    existing = {"thinkroute-keys": {"THINKROUTE_API_KEY": "sk-tenant-0123456789"}}
    env = pod_environment(objects, existing)
    assert env["LOG_FORMAT"] == "json"
    config = load_mounted_config(objects, env, tmp_path)
    assert (config.redis.url, config.redis.cluster) == ("redis://redis-cluster.data.svc:6379", True)


def test_chart_takes_the_redis_url_from_a_secret(tmp_path):
    values = {"redis": {"url": "", "existingSecret": "redis-auth", "existingSecretKey": "url"}}
    objects = render(values)
    assert_valid_kubernetes(objects)
    (redis_url,) = [e for e in container(objects)["env"] if e["name"] == "REDIS_URL"]
    assert redis_url["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "url"}
    secrets = chart_secrets(objects) | {"redis-auth": {"url": "rediss://:pw@redis:6380/0"}}
    config = load_mounted_config(objects, pod_environment(objects, secrets), tmp_path)
    assert config.redis.url == "rediss://:pw@redis:6380/0"


def test_chart_secret_carries_given_keys_and_extra_variables(tmp_path):
    values = {
        "secrets": {
            "adminKey": "sk-admin-0123456789",
            "apiKey": "sk-default-0123456789",
            "metricsKey": "sk-scrape-0123456789",
            "env": {"OPENAI_API_KEY": "sk-openai", "ACME_API_KEY": "sk-acme-0123456789"},
        },
        "config": {
            "tenants": [
                {"name": "default", "api_keys": ["${THINKROUTE_API_KEY}"]},
                {"name": "acme", "api_keys": ["${ACME_API_KEY}"], "default_mode": "cheap"},
            ]
        },
    }
    objects = render(values)
    assert_valid_kubernetes(objects)
    (secret,) = chart_secrets(objects).values()
    assert secret == {
        "THINKROUTE_ADMIN_KEY": "sk-admin-0123456789",
        "THINKROUTE_API_KEY": "sk-default-0123456789",
        "THINKROUTE_METRICS_KEY": "sk-scrape-0123456789",
        "OPENAI_API_KEY": "sk-openai",
        "ACME_API_KEY": "sk-acme-0123456789",
    }
    config = load_mounted_config(
        objects, pod_environment(objects, chart_secrets(objects)), tmp_path
    )
    assert [t.api_keys for t in config.tenants] == [
        ["sk-default-0123456789"],
        ["sk-acme-0123456789"],
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis": {"url": ""}}, "redis.url or redis.existingSecret"),
        ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"redis": {"url": "http://redis:6379"}}, "/redis/url"),
    ],
    ids=["no-redis", "min-above-max", "bad-type", "not-a-redis-url"],
)
def test_chart_refuses_values_that_would_deploy_something_broken(values, message):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


def test_values_comment_the_sizing_they_come_from():
    text = (CHART / "values.yaml").read_text()
    sizing = text[text.index("# --- Sizing") : text.index("resources:")]
    for figure in ("500-700 MB", "13 ms", "45 routed requests/s"):
        assert figure in sizing


# -- Grafana ------------------------------------------------------------------------

# name: (type, labels) of what the proxy exports.
METRICS = {
    "thinkroute_requests_total": ("counter", {"tenant", "tier", "model", "status"}),
    "thinkroute_route_decisions_total": ("counter", {"tenant", "tier", "mode", "reason"}),
    "thinkroute_spend_usd_total": ("counter", {"tenant", "tier"}),
    "thinkroute_routing_seconds": ("histogram", set()),
    "thinkroute_upstream_seconds": ("histogram", {"model"}),
    "thinkroute_cache_total": ("counter", {"tenant", "result"}),
    "thinkroute_fallbacks_total": ("counter", {"model"}),
    "thinkroute_budget_refusals_total": ("counter", {"tenant", "reason"}),
    "thinkroute_savings_usd_total": ("counter", {"tenant"}),
}


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_and_tenant_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "thinkroute_requests_total" in variables["tenant"]["definition"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])


def test_dashboard_covers_what_an_operator_asks():
    titles = " | ".join(p["title"].lower() for p in dashboard_panels())
    for topic in (
        "requests/s by tier",
        "reasoning share",
        "spend by tenant",
        "savings",
        "routing decision latency",
        "upstream latency",
        "cache hit ratio",
        "fallbacks",
        "budget refusals",
    ):
        assert topic in titles, topic
    exprs = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    used = {name.removesuffix("_bucket") for name in re.findall(r"thinkroute_[a-z_]+", exprs)}
    assert used == set(METRICS), f"not on the dashboard: {set(METRICS) - used}"


@pytest.mark.parametrize(
    "expr",
    [t["expr"] for p in dashboard_panels() for t in p["targets"]],
)
def test_dashboard_queries_only_exported_metrics_and_labels(expr):
    names = re.findall(r"\b(thinkroute_[a-z_]+)", expr)
    assert names
    labels: set[str] = set()
    for name in names:
        base = name.removesuffix("_bucket")
        assert base in METRICS, f"unknown metric {name}"
        kind, metric_labels = METRICS[base]
        labels |= metric_labels
        if kind == "histogram":
            assert name.endswith("_bucket") and "histogram_quantile(" in expr
            labels.add("le")
        else:
            assert re.search(rf"(rate|increase)\({name}\b", expr), f"{name} is a counter"
    used = set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        used |= {label.strip() for label in group.split(",")}
    assert used <= labels, f"labels {used - labels} are not on {sorted(set(names))}"

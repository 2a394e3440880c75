"""Static checks of the deployment files: there is no Docker engine here to run them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli.admin import DEFAULT_URL
from gateway.config import ConfigError, load_config
from gateway.observability.metrics import Metrics, TeamBudget, _ScrapeTime
from gateway.runtime.gateway import SETTLE_DRAIN_S
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "o1-gateway.json"

# The metric names of the contract (the README's metrics table), which the gateway must export
# (gateway/observability/metrics.py: see test_the_contract_is_what_the_gateway_exports).
# Histograms are listed by base name; their _bucket/_sum/_count series are allowed too.
ALLOWED_METRICS = frozenset(
    {
        "gateway_requests_total",
        "gateway_request_duration_seconds",
        "gateway_upstream_duration_seconds",
        "gateway_overhead_seconds",
        "gateway_time_to_first_token_seconds",
        "gateway_tokens_total",
        "gateway_spend_microdollars_total",
        "gateway_cache_hits_total",
        "gateway_cache_misses_total",
        "gateway_cache_saved_microdollars_total",
        "gateway_budget_limit_microdollars",
        "gateway_budget_spent_microdollars",
        "gateway_budget_remaining_microdollars",
        "gateway_ratelimit_refusals_total",
        "gateway_route_decisions_total",
        "gateway_patches_total",
        "gateway_tool_calls_total",
        "gateway_adaptive_patches_total",
        "gateway_upstream_retries_total",
        "gateway_upstream_fallbacks_total",
        "gateway_upstream_errors_total",
        "gateway_redis_duration_seconds",
        "gateway_redis_errors_total",
        "gateway_redis_up",
        "gateway_admission_degraded_total",
        "gateway_settles_refused_total",
        "gateway_in_flight_requests",
        "gateway_open_streams",
        "gateway_admin_actions_total",
        "gateway_dropped_connections_total",
        "gateway_model_substitutions_total",
        "gateway_model_shutdown_timestamp_seconds",
    }
)
HISTOGRAMS = frozenset(
    {
        "gateway_request_duration_seconds",
        "gateway_upstream_duration_seconds",
        "gateway_overhead_seconds",
        "gateway_time_to_first_token_seconds",
        "gateway_redis_duration_seconds",
    }
)
METRIC_NAME = re.compile(r"\bgateway_[a-z_]+")
APP_LABELS = {"app.kubernetes.io/name": "o1-gateway", "app.kubernetes.io/component": "gateway"}
MONITORING = K8S / "monitoring"
# The gateway's metrics port in every deployment file: /metrics alone, no key.
METRICS_PORT = 9464


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _k8s() -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/k8s by kind (one object per kind is shipped)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _yaml_docs(path):
            if doc.get("kind") != "Kustomization":
                assert doc["kind"] not in objects, f"{path.name}: second {doc['kind']}"
                objects[doc["kind"]] = doc
    return objects


def _exposed_port() -> int:
    exposed = re.findall(r"^EXPOSE (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert len(exposed) == 1
    return int(exposed[0])


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return compose


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _version() -> str:
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert found
    return found[1]


def _gateway_container() -> dict[str, Any]:
    containers = _k8s()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _metric_names(expr: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in METRIC_NAME.findall(expr)}


def _promtool(*args: str) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (tests/run.sh installs Debian's prometheus)")
    result = subprocess.run(
        ["promtool", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Dockerfile and compose ------------------------------------------------------------------


def test_compose_file_is_consistent_with_the_dockerfile() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    gateway = compose["services"]["gateway"]
    exposed = re.findall(r"^EXPOSE (\d+)", dockerfile, re.MULTILINE)
    assert exposed == ["8080"]
    assert gateway["ports"] == [f"{exposed[0]}:{exposed[0]}"]
    assert _flag(gateway["command"], "--port") == "8080"
    # The metrics port is reachable on the compose network only, never published.
    assert _flag(gateway["command"], "--metrics-port") == str(METRICS_PORT)
    assert gateway["expose"] == [str(METRICS_PORT)]
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert gateway["build"]["dockerfile"] == "Dockerfile"
    assert "redis" in compose["services"]


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    # Without a .dockerignore, `docker compose up --build` sent the whole checkout (a
    # virtualenv, .git, caches: over 500 MB here) to the daemon for the 4 MB the image uses.
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in ignore if line and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {line[1:] for line in patterns if line.startswith("!")}
    copied = set()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M):
        copied |= set(source.split())

    def under(path: str, entry: str) -> bool:
        return path == entry or path.startswith(entry + "/")

    assert all(any(under(path, entry) for entry in allowed) for path in copied), copied
    assert all(any(under(path, entry) for path in copied) for entry in allowed), allowed
    # What `pip install -e .` builds in place for this host stays out; the image compiles its own.
    assert {"gateway/**/*.so", "gateway/observability/_native_build.py"} <= set(patterns)


def test_the_kubernetes_steps_make_a_team_and_key_with_the_pods_admin_key() -> None:
    # The replicas load no teams file: the README's steps ended at a gateway answering every
    # request 401, with no word on how to make the first key.
    assert _k8s()["ConfigMap"]["data"]["gateway.yaml"].count('teams_file: ""') == 1
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Running it on Kubernetes") :]
    section = section[: section.index("What the manifests set up")]
    name = _k8s()["Deployment"]["metadata"]["name"]
    for command in ("teams create", "keys create"):
        assert f"kubectl exec deployment/{name} -- o1-gateway {command}" in section
    env = {item["name"] for item in _gateway_container()["env"]}
    assert "GATEWAY_ADMIN_KEY" in env and "O1GW_URL" not in env  # the CLI's default URL
    assert _flag(_gateway_container()["args"], "--port") == DEFAULT_URL.rsplit(":", 1)[1]


def test_compose_and_kubernetes_let_the_gateway_finish_its_shutdown() -> None:
    # Compose stopped the gateway with Docker's default 10 s grace: a call in flight was killed
    # and its worst case stayed held, to be charged at its reserve (a 0.07-cent call held 16
    # cents), although the gateway drains for server.shutdown_timeout_s and settles after.
    config = load_config((ROOT / "config" / "gateway.yaml").read_text(), {})
    needed = config.server.shutdown_timeout_s + SETTLE_DRAIN_S
    grace = re.fullmatch(r"(\d+)s", _compose()["services"]["gateway"]["stop_grace_period"])
    assert grace and int(grace[1]) >= needed
    pod = _k8s()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + needed


def test_compose_gives_the_gateway_the_admin_key_that_makes_its_teams_and_keys() -> None:
    # With a real upstream every caller needs a team's key. The image ships no teams file, so
    # the admin API is the only way to make one: without GATEWAY_ADMIN_KEY it is off, and the
    # stack the README starts with OPENAI_API_KEY answers every request 401.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "teams.yaml" not in dockerfile
    environment = _compose()["services"]["gateway"]["environment"]
    assert re.fullmatch(r"\$\{GATEWAY_ADMIN_KEY(:-)?\}", environment.get("GATEWAY_ADMIN_KEY", ""))
    # The README's compose commands set it, and make the team and key inside the container
    # (whose CLI reaches the gateway where its default URL says: the port compose serves on).
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Running it with docker compose") :]
    block = section[section.index("```sh") : section.index("```", section.index("```sh") + 5)]
    assert "GATEWAY_ADMIN_KEY=" in block
    assert "exec gateway o1-gateway teams create" in block
    assert "exec gateway o1-gateway keys create" in block
    port = _flag(_compose()["services"]["gateway"]["command"], "--port")
    assert f"http://127.0.0.1:{port}" == DEFAULT_URL


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    # Every path the image copies exists in the repository.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(DEPLOY) for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"}),
    ids=str,
)
def test_every_yaml_file_under_deploy_loads(path: Path) -> None:
    assert _yaml_docs(DEPLOY / path), f"{path} is empty"


def test_compose_runs_gateway_redis_prometheus_and_grafana_wired_together() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"gateway", "redis", "prometheus", "grafana"} <= set(services)
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert "prometheus" in services["grafana"]["depends_on"]
    assert "gateway" in services["prometheus"]["depends_on"]
    # Prometheus scrapes the gateway by its compose service name on the metrics port.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "o1-gateway"]
    assert job["static_configs"][0]["targets"] == [f"gateway:{METRICS_PORT}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # Grafana's datasource points at the prometheus service.
    datasources = _yaml_docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0]
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_compose_bind_mounts_exist_and_match_the_provisioning_paths() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    named_volumes = set(compose.get("volumes") or {})
    targets: dict[str, dict[str, Path]] = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in named_volumes:
                continue
            # Compose resolves relative sources against the compose file's directory.
            assert source.startswith("."), f"{name}: {source} should be relative to deploy/"
            path = (DEPLOY / source).resolve()
            assert path.exists(), f"{name}: mount source {source} does not exist"
            targets.setdefault(name, {})[target] = path
    prometheus = targets["prometheus"]
    assert (prometheus["/etc/prometheus"] / "prometheus.yml").is_file()
    assert (prometheus["/etc/prometheus"] / "alerts.yml").is_file()
    grafana = targets["grafana"]
    provisioning = grafana["/etc/grafana/provisioning"]
    assert (provisioning / "datasources" / "prometheus.yml").is_file()
    provider = _yaml_docs(provisioning / "dashboards" / "o1-gateway.yml")[0]["providers"][0]
    assert provider["type"] == "file"
    dashboards_dir = grafana[provider["options"]["path"]]
    assert (dashboards_dir / DASHBOARD.name).is_file()


# --- Kubernetes ------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = _yaml_docs(K8S / "kustomization.yaml")[0]
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == manifests - {"secret.example.yaml"}
    objects = _k8s()
    for kind in ("ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"):
        assert kind in objects, kind
    assert "PodDisruptionBudget" in objects
    for kind, obj in objects.items():
        assert "namespace" not in obj["metadata"], f"{kind} should be namespace-free"


def test_deployment_runs_replicas_with_probes_on_the_container_port() -> None:
    deployment = _k8s()["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = _gateway_container()
    assert container["image"] == f"o1-gateway:{_version()}"
    port, metrics = container["ports"]
    assert port["name"] == "http" and port["containerPort"] == _exposed_port()
    assert metrics["name"] == "metrics" and metrics["containerPort"] == METRICS_PORT
    args = container["args"]
    assert args[0] == "serve"
    assert _flag(args, "--port") == str(_exposed_port())
    assert _flag(args, "--workers") == "2"
    assert _flag(args, "--metrics-port") == str(METRICS_PORT)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path
        assert http_get["port"] in (port["name"], port["containerPort"])
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 60
    assert "preStop" in container["lifecycle"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert "cpu" in container["resources"]["requests"]  # the HPA's utilisation needs it


def test_deployment_is_non_root_read_only_with_writable_scratch_dirs() -> None:
    pod_spec = _k8s()["Deployment"]["spec"]["template"]["spec"]
    container = _gateway_container()
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    env = {item["name"]: item for item in container["env"]}
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
    for path in (multiproc, "/tmp"):
        assert path in mounts, path
        assert "emptyDir" in volumes[mounts[path]], path
    # The config file comes from the ConfigMap, where O1GW_CONFIG and --config say it is.
    config_path = Path(env["O1GW_CONFIG"]["value"])
    args = container["args"]
    assert args[args.index("--config") + 1] == str(config_path)
    config_volume = volumes[mounts[str(config_path.parent)]]
    configmap = _k8s()["ConfigMap"]
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert config_path.name in configmap["data"]


def test_configmap_holds_a_valid_gateway_config_with_the_shipped_models() -> None:
    shipped = load_config((ROOT / "config" / "gateway.yaml").read_text(), {})
    text = _k8s()["ConfigMap"]["data"]["gateway.yaml"]
    config = load_config(text, {}, source="deploy/k8s/configmap.yaml")
    assert config.server.host == "0.0.0.0"
    assert config.server.port == _exposed_port()
    assert config.server.metrics_port == METRICS_PORT
    assert shipped.server.metrics_port == 0  # safe by default: /metrics served nowhere
    stale = "stale: run python deploy/k8s/make_configmap.py"
    assert config.models == shipped.models, stale
    assert config.tiers == shipped.tiers, stale
    assert config.routing == shipped.routing, stale
    assert config.admission.teams_file == ""  # the image ships no teams file; teams live in Redis


@pytest.mark.parametrize(
    ("script", "generated", "sources"),
    [
        ("deploy/k8s/make_configmap.py", "deploy/k8s/configmap.yaml", ["config/gateway.yaml"]),
        (
            "deploy/k8s/monitoring/make_prometheusrule.py",
            "deploy/k8s/monitoring/prometheusrule.yaml",
            ["deploy/prometheus/alerts.yml"],
        ),
    ],
    ids=["configmap", "prometheusrule"],
)
def test_generated_manifests_are_what_their_scripts_make_now(
    tmp_path: Path, script: str, generated: str, sources: list[str]
) -> None:
    # Whole files, comments included: a setting or its explanation edited in the source and not
    # regenerated would deploy stale (the configmap once said the router's tuned thresholds were
    # "about 0.6 and 0.45" after they had become 0.625 and 0.425).
    for path in [script, generated, *sources]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((ROOT / path).read_text())
    subprocess.run([sys.executable, script], cwd=tmp_path, check=True, timeout=60)
    stale = f"stale: run python {script}"
    assert (tmp_path / generated).read_text() == (ROOT / generated).read_text(), stale


def test_secret_key_refs_name_the_example_secret() -> None:
    secret = _k8s()["Secret"]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert {"OPENAI_API_KEY", "GATEWAY_ADMIN_KEY", "REDIS_URL"} <= keys
    refs = [
        item["valueFrom"]["secretKeyRef"]
        for item in _gateway_container()["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    ]
    assert {ref["key"] for ref in refs} == {"OPENAI_API_KEY", "GATEWAY_ADMIN_KEY", "REDIS_URL"}
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in keys


def test_service_hpa_and_pdb_target_the_deployment() -> None:
    objects = _k8s()
    deployment = objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= APP_LABELS.items()
    container_ports = {port["name"]: port for port in _gateway_container()["ports"]}

    service = objects["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for port in service["spec"]["ports"]:
        target = container_ports[port["name"]]
        assert port["targetPort"] in (target["name"], target["containerPort"])
        assert port["port"] == target["containerPort"]
    assert container_ports["http"]["containerPort"] == _exposed_port()

    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert (
        hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"

    pdb = objects["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or "minAvailable" in pdb["spec"]


def test_network_policy_admits_the_api_anywhere_and_metrics_from_monitoring_only() -> None:
    policy = _k8s()["NetworkPolicy"]
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == APP_LABELS
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    by_port = {rule["ports"][0]["port"]: rule for rule in spec["ingress"]}
    assert set(by_port) == {"http", "metrics"}  # the container's port names
    assert "from" not in by_port["http"]  # the API: from anywhere
    (source,) = by_port["metrics"]["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    egress = {(port["port"], port["protocol"]) for rule in spec["egress"] for port in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (443, "TCP")}
    assert all("to" not in rule for rule in spec["egress"])  # by port: Redis may live anywhere
    names = {port["name"] for port in _gateway_container()["ports"]}
    assert set(by_port) <= names


def test_prometheus_operator_objects_scrape_the_metrics_port_with_the_shipped_rules() -> None:
    kustomization = _yaml_docs(MONITORING / "kustomization.yaml")[0]
    assert set(kustomization["resources"]) == {"podmonitor.yaml", "prometheusrule.yaml"}
    (monitor,) = _yaml_docs(MONITORING / "podmonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == APP_LABELS
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    # The job label the alerts (GatewayTargetDown) and the dashboard expect.
    assert {"targetLabel": "job", "replacement": "o1-gateway"} in endpoint["relabelings"]
    (rule,) = _yaml_docs(MONITORING / "prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    stale = "stale: run python deploy/k8s/monitoring/make_prometheusrule.py"
    assert rule["spec"]["groups"] == alerts["groups"], stale


# --- hardening ---------------------------------------------------------------------------------


def test_compose_keeps_prometheus_and_grafana_on_loopback_without_default_passwords() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for port in services[name]["ports"]:
            assert port.startswith("127.0.0.1:"), (name, port)
    # Prometheus without its lifecycle (reload, quit) and admin endpoints.
    command = services["prometheus"]["command"]
    assert not [flag for flag in command if flag.startswith(("--web.enable-lifecycle",
                                                             "--web.enable-admin-api"))]  # fmt: skip
    # Grafana's password must be given: ${VAR:?message} fails compose when it is not.
    environment = services["grafana"]["environment"]
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", environment["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert "admin" not in environment["GF_SECURITY_ADMIN_PASSWORD"].split(":?")[0]


IMAGE_VERSION = re.compile(r"(?:.+/)?[a-z0-9._-]+:v?\d+\.\d+\.\d+(?:-[a-z0-9.]+)*")


def test_every_image_is_pinned_to_a_full_version() -> None:
    images = [service["image"] for service in _compose()["services"].values()]
    images += [container["image"] for container in
               _k8s()["Deployment"]["spec"]["template"]["spec"]["containers"]]  # fmt: skip
    images += re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert len(images) == 7
    for image in images:
        assert IMAGE_VERSION.fullmatch(image), f"{image}: pin a full version, never latest"
    # The gateway's own image is tagged with the package's version, the same everywhere.
    ours = {image for image in images if image.startswith("o1-gateway:")}
    assert ours == {f"o1-gateway:{_version()}"}


def test_the_example_secret_holds_an_admin_key_placeholder_the_gateway_would_refuse() -> None:
    # Applied unedited, the gateway refuses to start rather than run with a known admin key.
    placeholder = _k8s()["Secret"]["stringData"]["GATEWAY_ADMIN_KEY"]
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_config(
            (ROOT / "config" / "gateway.yaml").read_text(), {"GATEWAY_ADMIN_KEY": placeholder}
        )


# --- Grafana and Prometheus ------------------------------------------------------------------


def test_dashboard_loads_with_unique_panel_ids_titles_and_variables() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    assert all(panel.get("title") for panel in panels)
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["team"]["definition"] == "label_values(gateway_requests_total, team)"
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_and_alerts_use_only_metric_names_from_the_spec() -> None:
    exprs = _dashboard_exprs() + [rule["expr"] for rule in _alert_rules()]
    used: set[str] = set()
    for expr in exprs:
        names = _metric_names(expr)
        assert names <= ALLOWED_METRICS, (expr, names - ALLOWED_METRICS)
        used |= names
        # _bucket, _sum and _count belong to histograms only.
        for full in re.findall(r"\bgateway_[a-z_]+_(?:bucket|sum|count)\b", expr):
            assert re.sub(r"_(bucket|sum|count)$", "", full) in HISTOGRAMS, full
    # The dashboard shows every metric of the contract.
    assert _metric_names(" ".join(_dashboard_exprs())) == ALLOWED_METRICS


def _exported() -> dict[str, tuple[str, set[str]]]:
    """Every series name the gateway exports: (the type of its family, its label names)."""
    exported: dict[str, tuple[str, set[str]]] = {}
    for collector in set(Metrics().registry._names_to_collectors.values()):
        kind, base, names = collector._type, collector._name, set(collector._labelnames)
        exported[base + ("_total" if kind == "counter" else "")] = (kind, names)
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                exported[base + suffix] = (kind, names | ({"le"} if suffix == "_bucket" else set()))
    for family in _ScrapeTime(True, [TeamBudget("t", 1, 0)]).collect():
        exported[family.name] = (family.type, {key for s in family.samples for key in s.labels})
    return exported


def _balanced(expr: str, start: int) -> str:
    """The parenthesised expression opening at `start`."""
    depth = 0
    for end in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[end], 0)
        if depth == 0:
            return expr[start : end + 1]
    raise AssertionError(f"unbalanced: {expr}")


def test_the_contract_is_what_the_gateway_exports() -> None:
    # The list above was kept by hand: a metric renamed or dropped in the code left the dashboard
    # and the alerts querying a series nothing exports, and these tests passing.
    exported = _exported()
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) if k == "histogram" else n
             for n, (k, _) in exported.items()}  # fmt: skip
    assert bases == ALLOWED_METRICS
    assert {n for n in bases if exported[n][0] == "histogram"} == HISTOGRAMS


def test_dashboard_and_alerts_select_and_group_by_labels_their_metrics_have() -> None:
    # A label the metric does not carry selects nothing (a panel or alert that never shows);
    # `job` and `instance` are the ones Prometheus adds.
    exported = _exported()
    added = {"job", "instance"}
    for expr in _dashboard_exprs() + [rule["expr"] for rule in _alert_rules()]:
        for name, selector in re.findall(r"\b(gateway_[a-z_]+)\b(\{[^}]*\})?", expr):
            assert name in exported, (name, expr)
            for key in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                assert key in exported[name][1] | added, (name, key, expr)
        for group in re.finditer(r"\bby\s*\(([^)]*)\)\s*(?=\()", expr):
            inner = _balanced(expr, group.end())
            metrics = re.findall(r"\bgateway_[a-z_]+\b", inner)
            for key in filter(None, (k.strip() for k in group[1].split(","))):
                for name in metrics:
                    assert key in exported[name][1] | added, (name, key, expr)


def test_alerts_cover_the_required_conditions_with_severity_and_annotations() -> None:
    rules = {rule["alert"]: rule for rule in _alert_rules()}
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    required = {
        "GatewayBudget80Percent": "gateway_budget_spent_microdollars",
        "GatewayBudgetExhausted": "gateway_budget_limit_microdollars",
        "GatewayHighErrorRate": 'status_class="5xx"',
        "GatewayOverheadP99High": "gateway_overhead_seconds_bucket",
        "GatewayRedisDown": "gateway_redis_up",
        "GatewayAdmissionDegraded": "gateway_admission_degraded_total",
        "GatewaySettleRefused": "gateway_settles_refused_total",
        "GatewayUpstreamFailing": "gateway_upstream_errors_total",
    }
    for alert, needle in required.items():
        assert needle in rules[alert]["expr"], alert
    tested = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    exercised: dict[str, set[bool]] = {alert: set() for alert in rules}
    for test in tested["tests"]:
        for case in test["alert_rule_test"]:
            exercised[case["alertname"]].add(bool(case["exp_alerts"]))
    for alert, outcomes in exercised.items():
        assert outcomes == {True, False}, f"{alert}: test both firing and not firing"


def test_promtool_checks_the_prometheus_config() -> None:
    _promtool("check", "config", "deploy/prometheus/prometheus.yml")


def test_promtool_checks_the_alert_rules() -> None:
    _promtool("check", "rules", "deploy/prometheus/alerts.yml")


def test_promtool_runs_the_alert_unit_tests() -> None:
    _promtool("test", "rules", "deploy/prometheus/alerts_test.yml")


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # Grafana's variables replaced by what they expand to; each query becomes a recording rule.
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$team", ".*"),
        }
        for i, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", str(path))


def test_the_image_names_no_teams_file_it_does_not_have() -> None:
    """The image copies gateway.yaml alone, whose `teams_file` (config/teams.yaml) is relative
    to a checkout: the image says there is none, rather than warning at every start that no
    teams were loaded from a file no image has."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY config/teams.yaml" not in dockerfile
    assert re.search(r'^\s+O1GW__ADMISSION__TEAMS_FILE=""', dockerfile, re.MULTILINE)

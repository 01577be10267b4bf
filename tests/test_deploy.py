"""deploy/: the Kubernetes manifests against the Kubernetes JSON schemas (offline, kubernetes-validate), the
properties a course's deployment needs in them and in the Dockerfile, and HAProxy's own check of the
configuration `make serve` writes. Nothing here builds the image or talks to a cluster.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
# The oldest Kubernetes still commonly run, and the newest the package bundles: the manifests fit both.
VERSIONS = ("1.30.0", "1.37.0")
HEALTH = "/_stcore/health"


def resources(names: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Every object in deploy/k8s/*.yaml by kind (one of each), class mode's redis.yaml apart (or the files named)."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")) if names is None else [K8S / n for n in names]:
        if names is None and path.name == "redis.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


def container(objects: dict[str, dict]) -> dict:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity ("500m", "2", "1Gi", "512Mi") as a number of cores or bytes."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text)).groups()
    return float(number) * units[unit]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version):
    objects = resources()
    assert set(objects) == {"Deployment", "Service", "Ingress", "Secret"}
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)  # raises on any error or unknown field


@pytest.mark.parametrize("version", VERSIONS)
def test_class_modes_redis_validates_and_the_app_pods_use_it(version):
    objects = resources(("redis.yaml",))
    assert set(objects) == {"Deployment", "Service", "Secret"}
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)
    (redis,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in redis["args"] and redis["securityContext"]["readOnlyRootFilesystem"]
    assert objects["Service"]["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e for e in container(resources())["env"]}
    store = env["DENSENET_VIZ_STORE"]["value"]
    assert store == f"redis://:$(REDIS_PASSWORD)@{objects['Service']['metadata']['name']}:6379/0"
    assert list(env).index("REDIS_PASSWORD") < list(env).index("DENSENET_VIZ_STORE")  # $(...) needs it first
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == objects["Secret"]["metadata"]["name"]


def test_the_validator_rejects_a_broken_manifest():
    deployment = copy.deepcopy(resources()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(resources()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo: strict mode refuses it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_ingress_pins_browsers_to_pods_with_a_cookie_and_keeps_websockets_open():
    objects = resources()
    notes = objects["Ingress"]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "affinity"] == "cookie"
    assert notes[prefix + "session-cookie-name"]
    assert int(notes[prefix + "proxy-read-timeout"]) >= 3600 and int(notes[prefix + "proxy-send-timeout"]) >= 3600
    assert parse_quantity(notes[prefix + "proxy-body-size"].replace("m", "Mi")) >= 20 * 2**20  # an image upload
    assert objects["Ingress"]["spec"]["ingressClassName"] == "nginx"
    backend = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = objects["Service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_service_selects_the_deployment_pods_on_the_probed_port():
    objects = resources()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Service"]["spec"]["selector"]
    assert selector.items() <= labels.items()
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] in ports
    assert ports["http"] == int(re.search(r"^EXPOSE (\d+)", DOCKERFILE, re.M).group(1))


def test_the_pods_probe_health_run_as_non_root_and_have_resources():
    objects = resources()
    app = container(objects)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"] == {"path": HEALTH, "port": "http"}, probe
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert app["securityContext"]["allowPrivilegeEscalation"] is False
    requests, limits = app["resources"]["requests"], app["resources"]["limits"]
    for what in ("cpu", "memory"):
        assert 0 < parse_quantity(requests[what]) <= parse_quantity(limits[what]), what


def test_the_cookie_secret_comes_from_the_secret():
    objects = resources()
    (env,) = [e for e in container(objects)["env"] if e["name"] == "STREAMLIT_SERVER_COOKIE_SECRET"]
    ref = env["valueFrom"]["secretKeyRef"]
    secret = objects["Secret"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert "REPLACE" in secret["stringData"][ref["key"]]  # a placeholder, never a real secret in the repository


def test_the_dockerfile_runs_as_non_root_with_cpu_torch_and_a_health_check():
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*" + re.escape(HEALTH), DOCKERFILE, re.M)
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE, re.M)  # the default for real builds
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$", DOCKERFILE, re.M)
    assert re.search(r"^CMD \[\"python\", \"-m\", \"densenet_viz\.app\.launch\"\]$", DOCKERFILE, re.M)
    # Address and port come from the environment (the command line would override it), 0.0.0.0 for a pod.
    assert re.search(r"^\s+STREAMLIT_SERVER_ADDRESS=0\.0\.0\.0\b", DOCKERFILE, re.M)
    port = re.search(r"^\s+STREAMLIT_SERVER_PORT=(\d+)\b", DOCKERFILE, re.M).group(1)
    assert port == re.search(r"^EXPOSE (\d+)", DOCKERFILE, re.M).group(1)
    assert "STREAMLIT_SERVER_PORT" in re.search(r"^HEALTHCHECK .*\n.*", DOCKERFILE, re.M).group(0)
    torch_pin = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert f"torch=={torch_pin}" in DOCKERFILE  # the image's torch is the one the project pins


def load_script(name: str = "serve"):
    """deploy/<name>.py as a module (deploy/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", ROOT / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def test_haproxy_accepts_the_configuration_make_serve_writes(tmp_path: Path):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    text = load_script().haproxy_config(tmp_path, "127.0.0.1", 8501, {"r1": 40001, "r2": 40002})
    for line in ("cookie SERVERID insert indirect nocache", "option httpchk GET /_stcore/health", "option redispatch",
                 "timeout tunnel 1h", "server r1 127.0.0.1:40001 cookie r1 check"):
        assert line in text, line
    assert "balance source" not in text  # affinity by cookie, not by client address
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    config.write_text(text.replace("timeout tunnel 1h", "timeout tunnel forever"))  # and it does reject errors
    assert subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, timeout=30).returncode != 0


def test_make_serve_shares_the_cores_among_the_replicas_workers():
    serve = load_script()
    assert serve.workers_per_replica(2, cores=2) == 1  # each replica still has one experiment worker
    assert serve.workers_per_replica(4, cores=16) == 3  # 4 page threads + 4 x 3 workers = 16 cores
    assert serve.workers_per_replica(8, cores=8) == 1


def test_make_serve_counts_cores_by_the_apps_rule_without_loading_torch():
    from densenet_viz.analysis.budget import cpu_count

    code = ("import sys; sys.path.insert(0, 'deploy'); import serve; "
            "print(serve.usable_cores(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(cpu_count()), "False"]


def test_make_serve_gives_every_replica_the_same_class_store(tmp_path: Path, monkeypatch):
    serve = load_script()
    monkeypatch.delenv("DENSENET_VIZ_STORE", raising=False)
    chosen = serve.Supervisor(2, "127.0.0.1", 8501, tmp_path, sys.executable, store="redis://127.0.0.1:6379/0")
    assert chosen.env["DENSENET_VIZ_STORE"] == "redis://127.0.0.1:6379/0"
    default = serve.Supervisor(2, "127.0.0.1", 8501, tmp_path, sys.executable)
    assert "DENSENET_VIZ_STORE" not in default.env  # the replicas share this machine's default SQLite file
    makefile = (ROOT / "Makefile").read_text()
    assert "$(if $(STORE),--store $(STORE))" in makefile

"""deploy/ end to end: the image built with podman, two containers of it behind `make serve`'s HAProxy.

The image is built from deploy/Dockerfile by deploy/build_image.py (a Debian base from mmdebstrap, this machine's
pip configuration mounted for the build). Both containers run as deploy/k8s/deployment.yaml runs a pod: its
user and group, a read-only root filesystem with a tmpfs where its emptyDir is, no capabilities, no privilege
escalation, its CPU and memory limits, its environment (one cookie secret for both) and the image's health check.
On the host's network each listens on a loopback port of its own, and HAProxy with deploy/haproxy.cfg.in (cookie
affinity) is the one address students open. Chromium opens a lesson link there, uploads an image and sees its
maps; its container is stopped as a pod is (SIGTERM), and the student lands on the other container with the
model the URL names. Skipped only where podman, runc or mmdebstrap is missing or podman cannot run.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import ARTIFACTS, CHROMIUM_ARGS, CONTEXT_OPTIONS, free_port, record
from test_deploy import container, load_script, parse_quantity, resources
from test_serve import (
    GONE,
    RUN_TIMEOUT_MS,
    affinity,
    move_channels_slider,
    no_exception,
    settle,
    upload_and_see_maps,
    wait_for_text,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # a first build installs torch & co. in the image

build_image = load_script("build_image")
serve = load_script("serve")
# One image per checkout: two checkouts testing at once on one machine do not replace each other's.
TAG = f"localhost/densenet-viz:test-{hashlib.sha1(str(build_image.ROOT).encode()).hexdigest()[:8]}"
HEALTHY_TIMEOUT_S = 180  # two containers importing torch at once on a loaded 2-core machine
# A lesson link: a small CIFAR DenseNet-BC whose growth rate differs from its preset's, two controls shown.
LESSON = "preset=densenet_bc_100_12&k=16&blocks=3-3-3&show=k,blocks"
LESSON_BOX = '[data-testid="stMain"] .st-key-lesson_box'


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """One podman command with the flags these machines need (runc, cgroupfs); its output as text."""
    done = subprocess.run([*build_image.PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def k8s_flags(secret: str) -> list[str]:
    """`podman run` options for what deployment.yaml asks of a pod: user, read-only root, tmpfs, limits, env."""
    objects = resources()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    app = container(objects)
    user, security = pod["securityContext"], app["securityContext"]
    flags = ["--user", f"{user['runAsUser']}:{user['runAsGroup']}"]
    if security["readOnlyRootFilesystem"]:
        flags += ["--read-only", "--read-only-tmpfs=false"]  # podman's own tmpfs on /run, /tmp, /var/tmp: none
    if security["allowPrivilegeEscalation"] is False:
        flags += ["--security-opt", "no-new-privileges"]
    flags += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in app["volumeMounts"]:
        empty_dir = volumes[mount["name"]]["emptyDir"]
        flags += ["--tmpfs", f"{mount['mountPath']}:size={int(parse_quantity(empty_dir['sizeLimit']))}"]
    limits = app["resources"]["limits"]
    flags += ["--cpus", str(parse_quantity(limits["cpu"])), "--memory", str(int(parse_quantity(limits["memory"])))]
    for env in app["env"]:
        # The only secret the pod reads is the cookie secret; every container gets the same one.
        value = secret if "secretKeyRef" in env.get("valueFrom", {}) else env["value"]
        flags += ["--env", f"{env['name']}={value}"]
    return flags


def lesson_values(page) -> tuple[str, str]:
    """(growth rate, layers per block) as the lesson's controls in the page show them, once drawn with a value (a
    slow machine's browser filled the text box after the run had ended)."""
    from playwright.sync_api import expect

    box = page.locator(LESSON_BOX)
    with contextlib.suppress(AssertionError):  # still empty: the comparison below reports it
        expect(box.locator(".st-key-block_config input")).not_to_have_value("", timeout=30_000)
    return (box.locator('.st-key-growth_rate input[type="range"]').input_value(),
            box.locator(".st-key-block_config input").input_value())


def test_pip_configuration_reaches_the_build_as_a_file_with_its_local_paths(tmp_path: Path):
    index, wheels = tmp_path / "mirror" / "simple", tmp_path / "wheels"
    index.mkdir(parents=True)
    wheels.mkdir()
    config = {"global": {"extra-index-url": f"https://pypi.org/simple file://{index}", "find-links": str(wheels),
                         "timeout": "60", "constraint": str(tmp_path / "missing.txt")}}
    # A local index's pages link to files beside it: its parent is mounted; what does not exist is not.
    assert build_image.local_paths(config) == sorted([index.parent, wheels])
    written = configparser.ConfigParser(interpolation=None)
    written.read_string(build_image.pip_conf_text(config))
    assert {name: dict(section) for name, section in written.items() if name != "DEFAULT"} == config
    command = build_image.build_command("x:y", tmp_path / "pip.conf", [wheels])
    assert f"--volume={tmp_path / 'pip.conf'}:/etc/pip.conf:ro" in command
    assert f"--volume={wheels}:{wheels}:ro" in command
    assert "TORCH_INDEX_URL=" in command and "--format" in command


@pytest.fixture(scope="module")
def image() -> str:
    """deploy/Dockerfile's image, built (layers cached between runs) by deploy/build_image.py."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no container engine: {', '.join(missing)} missing "
                    "(`apt-get install podman runc mmdebstrap`; .ci/run installs them)")
    info = subprocess.run([*build_image.PODMAN, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    ARTIFACTS.mkdir(exist_ok=True)
    start = time.monotonic()
    with open(ARTIFACTS / "container-build.log", "wb") as log:
        created = build_image.ensure_base()
        base_s = time.monotonic() - start
        try:
            build_s = build_image.build(TAG, log=log)
        except subprocess.CalledProcessError:
            pytest.fail(f"the image did not build; see {ARTIFACTS / 'container-build.log'}")
    if created:
        record("container_base_seconds", round(base_s, 1))
    record("container_build_seconds", round(build_s, 1))
    record("container_image_gib", round(build_image.image_size(TAG) / 2**30, 2))
    return TAG


class Pod:
    """One container of the image on a loopback port of the host's network."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, check=False)

    def healthy(self) -> bool:
        """The image's own HEALTHCHECK, run now (no systemd here to run it on a timer)."""
        return podman("healthcheck", "run", self.name, check=False, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def balanced(image, tmp_path_factory):
    """Two containers with one cookie secret behind HAProxy with `make serve`'s configuration:
    (HAProxy's URL, the containers by HAProxy's server name, HAProxy's state folder with its stats socket)."""
    run_id = uuid.uuid4().hex[:8]
    secret = secrets.token_hex(32)
    pods = {f"r{i + 1}": Pod(f"densenet-viz-test-{run_id}-r{i + 1}", port)
            for i, port in enumerate(serve.free_ports(2))}
    state_dir = tmp_path_factory.mktemp("container-haproxy")
    port = free_port()
    haproxy = None
    try:
        started = {}
        for name, pod in pods.items():
            started[name] = time.monotonic()
            podman("run", "--detach", "--name", pod.name, "--network", "host", *build_image.RUN_LIMITS,
                   *k8s_flags(secret), "--health-interval", "disable",
                   "--env", "STREAMLIT_SERVER_ADDRESS=127.0.0.1", "--env", f"STREAMLIT_SERVER_PORT={pod.port}",
                   image)  # fmt: skip
        healthy_after = {}
        while len(healthy_after) < len(pods) and time.monotonic() - started["r1"] < HEALTHY_TIMEOUT_S:
            for name, pod in pods.items():
                if name not in healthy_after and pod.healthy():
                    healthy_after[name] = round(time.monotonic() - started[name], 1)
            time.sleep(0.5)
        assert len(healthy_after) == len(pods), f"not healthy in {HEALTHY_TIMEOUT_S} s: {healthy_after}"
        record("container_start_to_healthy_seconds", healthy_after)

        config = state_dir / "haproxy.cfg"
        config.write_text(serve.haproxy_config(state_dir, "127.0.0.1", port, {n: p.port for n, p in pods.items()}))
        with open(ARTIFACTS / "container-haproxy.log", "wb") as log:
            haproxy = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        states: dict[str, str] = {}
        while time.monotonic() < deadline and not (states and all(s == "UP" for s in states.values())):
            time.sleep(0.5)
            try:
                states = serve.server_states(state_dir / "haproxy.sock")
            except OSError:
                continue
        assert states == {"r1": "UP", "r2": "UP"}, states
        yield f"http://127.0.0.1:{port}", pods, state_dir
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(timeout=30)
        for name, pod in pods.items():
            logs = podman("logs", pod.name, check=False)
            (ARTIFACTS / f"container-{name}.log").write_text(logs.stdout + logs.stderr)
            podman("rm", "--force", "--time", "5", pod.name, check=False)


def test_the_containers_run_as_the_deployment_says(balanced):
    _, pods, _ = balanced
    app = container(resources())
    inspect = json.loads(podman("inspect", *(p.name for p in pods.values())).stdout)
    for pod, info in zip(pods.values(), inspect, strict=True):
        assert pod.exec("id", "-u").stdout.strip() == "10001"
        refused = pod.exec("touch", "/var/tmp/written")  # a folder anyone may write to, on the root filesystem
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
        assert pod.exec("touch", "/tmp/written").returncode == 0  # the emptyDir's tmpfs
        probe = app["startupProbe"]["httpGet"]["path"]
        assert probe in " ".join(info["Config"]["Healthcheck"]["Test"])  # the image checks what the probes do
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["HostConfig"]["Memory"] == parse_quantity(app["resources"]["limits"]["memory"])


@pytest.mark.browser
def test_a_lesson_link_through_haproxy_survives_its_container_stopping(balanced, playwright_manager):
    url, pods, state_dir = balanced
    manager, executable = playwright_manager
    try:
        browser = manager.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # Playwright raises its own Error type for every launch failure
        pytest.skip(f"Playwright could not launch {executable}: {exc}")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **CONTEXT_OPTIONS)
    context.set_default_timeout(RUN_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{url}/features?{LESSON}")
        settle(page)
        no_exception(page)
        model = parse_qs(urlparse(page.url).query)
        assert model["k"] == ["16"] and model["blocks"] == ["3-3-3"], page.url
        assert lesson_values(page) == ("16", "3, 3, 3")
        page.locator('[data-testid="stRadio"]').filter(has_text="Image").get_by_text("Upload", exact=True).click()
        wait_for_text(page, "Upload an image")
        settle(page)
        upload_and_see_maps(page, seed=5)
        first = affinity(context)
        other = next(name for name in pods if name != first)

        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws))
        stopped_at = time.monotonic()
        podman("stop", "--time", "30", pods[first].name)  # SIGTERM, as a pod being deleted gets
        while not sockets and time.monotonic() - stopped_at < RUN_TIMEOUT_MS / 1000:
            page.wait_for_timeout(250)
        assert sockets, "the tab did not reconnect"
        record("container_reconnect_seconds", round(time.monotonic() - stopped_at, 1))
        assert serve.server_states(state_dir / "haproxy.sock")[other] == "UP"

        # The next rerun runs on the other container: a new session, built from the URL's model.
        settle(page)
        move_channels_slider(page)
        wait_for_text(page, GONE)
        settle(page)
        no_exception(page)
        assert parse_qs(urlparse(page.url).query) == model, page.url
        assert lesson_values(page) == ("16", "3, 3, 3")
        upload_and_see_maps(page, seed=6)  # the other container takes the upload: same cookie secret
        assert affinity(context) == other
    finally:
        context.close()
        browser.close()

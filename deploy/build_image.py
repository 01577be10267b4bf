"""Build deploy/Dockerfile's image with podman on a machine without a registry: `python deploy/build_image.py`.

The base image comes from Debian's own archive (mmdebstrap: a minimal bookworm with python3, its venv module
and CA certificates, imported as localhost/debian-py:bookworm); Python packages come from wherever this
machine's pip gets them. `pip config list` names that configuration: it is written to a pip.conf mounted at
/etc/pip.conf for the build only, with every local file and folder it names (wheel folders, file:// indexes,
constraints, a CA bundle) mounted read-only at the same path; only empty mount points stay in the image. torch then
comes from that configuration too (TORCH_INDEX_URL empty), not from PyTorch's index.

The flags in PODMAN and RUN_LIMITS are what podman needs on virtual machines like the development ones:
crun refuses cgroups in hybrid mode (runc with cgroupfs works), and raising the open-files or process limits
fails, so containers keep 1024 of each. Builds run RUN steps in a chroot on the host's network.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
RUN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BASE_IMAGE = "localhost/debian-py:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
DEFAULT_TAG = "localhost/densenet-viz:local"
INDEX_KEYS = {"index-url", "extra-index-url"}


def pip_config(python: str = sys.executable) -> dict[str, dict[str, str]]:
    """This machine's pip configuration by section, from `pip config list` (PIP_* variables count as global)."""
    listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
    config: dict[str, dict[str, str]] = {}
    for line in listed.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        section, _, name = key.rpartition(".")
        # pip prints each value as a Python literal; its environment variables come as ":env:".
        config.setdefault("global" if section == ":env:" else section, {})[name] = ast.literal_eval(value)
    return config


def pip_conf_text(config: dict[str, dict[str, str]]) -> str:
    """The configuration as a pip.conf file."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(config)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def local_paths(config: dict[str, dict[str, str]]) -> list[Path]:
    """Every existing local file or folder the configuration names (plain paths and file:// URLs), sorted.

    A local index's pages link to their files by relative paths, commonly beside the index (simple/ and
    files/ in one folder): for an index URL, its parent folder."""
    found = set()
    for section in config.values():
        for key, value in section.items():
            for word in str(value).split():
                path = Path(urlparse(word).path if word.startswith("file://") else word)
                if key in INDEX_KEYS:
                    path = path.parent
                if path.is_absolute() and path.exists():
                    found.add(path)
    return sorted(found)


def ensure_base(image: str = BASE_IMAGE) -> bool:
    """Create the Debian base image with mmdebstrap unless podman already has it; True if it was created."""
    if subprocess.run([*PODMAN, "image", "exists", image]).returncode == 0:
        return False
    with tempfile.TemporaryDirectory(prefix="densenet-viz-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(tarball)],
                       check=True)
        subprocess.run([*PODMAN, "import", str(tarball), image], check=True, stdout=subprocess.DEVNULL)
    return True


def build_command(tag: str, pip_conf: Path, mounts: list[Path], base: str = BASE_IMAGE) -> list[str]:
    """`podman build` of deploy/Dockerfile on `base`, with pip's configuration and its local paths mounted."""
    volumes = [f"--volume={pip_conf}:/etc/pip.conf:ro"] + [f"--volume={p}:{p}:ro" for p in mounts]
    return [
        *PODMAN, "build", "--isolation", "chroot", "--network", "host", *RUN_LIMITS,
        "--format", "docker",  # the OCI format has no HEALTHCHECK
        "--build-arg", f"BASE_IMAGE={base}", "--build-arg", "TORCH_INDEX_URL=",
        *volumes, "--file", str(ROOT / "deploy" / "Dockerfile"), "--tag", tag, str(ROOT),
    ]  # fmt: skip


def build(tag: str = DEFAULT_TAG, python: str = sys.executable, log=None) -> float:
    """Build the image (and the base if missing) as `tag`; return the build's seconds (the base's not counted)."""
    ensure_base()
    config = pip_config(python)
    with tempfile.TemporaryDirectory(prefix="densenet-viz-pip-") as tmp:
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text(pip_conf_text(config))
        start = time.monotonic()
        subprocess.run(build_command(tag, pip_conf, local_paths(config)), check=True, stdout=log,
                       stderr=subprocess.STDOUT if log else None)
        return time.monotonic() - start


def image_size(tag: str) -> int:
    """The image's size in bytes as podman reports it."""
    out = subprocess.run([*PODMAN, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    """Parse the options, build, and print the build time and the image's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"the image's name (default {DEFAULT_TAG})")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose pip configuration is used")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)}: `sudo apt-get install podman runc mmdebstrap` and try again.",
              file=sys.stderr)
        return 2
    seconds = build(args.tag, args.python)
    print(f"built {args.tag} in {seconds:.0f} s: {image_size(args.tag) / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

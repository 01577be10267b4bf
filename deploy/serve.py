"""Serve the app from several Streamlit processes behind HAProxy on one port: `make serve REPLICAS=N PORT=P`.

One Streamlit process runs every session's script under one interpreter lock, so it uses about one core
for page work. This supervisor starts N replicas through the launcher (`python -m densenet_viz.app.launch`,
as `make run` does) on loopback ports, all with one `server.cookieSecret` made for this start (so a cookie
or XSRF token one replica signed is valid on the others), writes HAProxy's configuration from
deploy/haproxy.cfg.in (cookie affinity, websocket tunnel, health checks, redispatch) and runs HAProxy in
the foreground. A replica that dies is started again on its port; HAProxy's health checks take it out and
bring it back. Ctrl-C or SIGTERM stops every process it started. The state directory holds the filled-in
configuration, HAProxy's stats socket and replicas.json (name, port and pid of each replica), for an
operator or a test to look at.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import importlib.util
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("haproxy.cfg.in")
STOP_GRACE_S = 10  # SIGTERM, then SIGKILL after this long
RESTART_DELAY_MAX_S = 30  # a replica that keeps dying is restarted at most this often
_PR_SET_PDEATHSIG = 1


def usable_cores() -> int:
    """The cores this process may use, by the app's own rule (densenet_viz/cores.py: affinity and cgroup quota),
    loaded from its file: importing the package would load torch into this supervisor."""
    spec = importlib.util.spec_from_file_location("densenet_viz_cores", ROOT / "densenet_viz" / "cores.py")
    cores = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cores)
    return cores.cpu_count()


def workers_per_replica(replicas: int, cores: int | None = None) -> int:
    """Experiment workers for each replica (DENSENET_VIZ_WORKERS): the cores the replicas' own page work leaves,
    shared out, at least one each. Left alone, every replica would take all cores but one for itself."""
    cores = usable_cores() if cores is None else cores
    return max(1, (cores - replicas) // replicas)


def replica_command(port: int, python: str = sys.executable) -> list[str]:
    """The command of one replica: `make run`'s flags on an internal loopback port."""
    return [python, "-m", "densenet_viz.app.launch", "--server.address", "127.0.0.1", "--server.port", str(port)]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def haproxy_config(state_dir: Path, bind: str, port: int, replicas: dict[str, int]) -> str:
    """deploy/haproxy.cfg.in filled in: the listening address and one `server` line per replica."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{p} cookie {name} check" for name, p in replicas.items())
    return Template(TEMPLATE.read_text()).substitute(state_dir=state_dir, bind=bind, port=port, servers=servers)


def server_states(stats_socket: Path) -> dict[str, str]:
    """Each replica's state as HAProxy's health checks see it ("UP", "DOWN", ...), from its stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(stats_socket))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "replicas" and r["svname"] != "BACKEND"}


def _die_with_parent() -> None:
    # Linux: if the supervisor is killed outright (SIGKILL), the kernel sends its children SIGTERM.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(cmd: list[str], env: dict[str, str], log) -> subprocess.Popen:
    # Own session and process group: Ctrl-C reaches only the supervisor, which stops the children in order.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process's group, SIGKILL it after STOP_GRACE_S, and reap it."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Replica:
    """One Streamlit process of the pool: its HAProxy name, loopback port and current process."""

    name: str
    port: int
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None  # when a replica that exited is due to start again


class Supervisor:
    """Starts the replicas and HAProxy, restarts replicas that die, and stops everything on a signal."""

    def __init__(self, replicas: int, bind: str, port: int, state_dir: Path, python: str,
                 restart_delay: float = 1.0, store: str | None = None) -> None:
        self.bind, self.port, self.state_dir, self.python = bind, port, state_dir, python
        self.restart_delay = restart_delay
        self.replicas = [Replica(f"r{i + 1}", p) for i, p in enumerate(free_ports(replicas))]
        self.env = dict(os.environ, STREAMLIT_SERVER_COOKIE_SECRET=secrets.token_hex(32))  # never on disk
        self.env.setdefault("DENSENET_VIZ_WORKERS", str(workers_per_replica(replicas)))  # a setting of yours wins
        if store:  # class mode's store: every replica must use the same one (default: one SQLite file here)
            self.env["DENSENET_VIZ_STORE"] = store
        self.haproxy: subprocess.Popen | None = None
        self.stopping = False

    def say(self, message: str) -> None:
        print(f"[serve] {message}", flush=True)

    def start_replica(self, replica: Replica) -> None:
        # Each replica logs to its own file: their start-up lines name internal ports, not the one to open.
        with open(self.state_dir / f"{replica.name}.log", "ab") as log:
            replica.process = _start(replica_command(replica.port, self.python), self.env, log)
        replica.restart_at = None
        replica.started_at = time.monotonic()
        self.write_state()

    def write_state(self) -> None:
        """replicas.json: what runs where, for an operator or a test."""
        state = {
            "url": f"http://{self.bind}:{self.port}",
            "haproxy_pid": self.haproxy.pid if self.haproxy else None,
            "replicas": [{"name": r.name, "port": r.port, "pid": r.process.pid if r.process else None,
                          "restarts": r.restarts} for r in self.replicas],
        }
        tmp = self.state_dir / "replicas.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_dir / "replicas.json")

    def start(self) -> None:
        for replica in self.replicas:
            self.start_replica(replica)
        config = self.state_dir / "haproxy.cfg"
        config.write_text(haproxy_config(self.state_dir, self.bind, self.port,
                                         {r.name: r.port for r in self.replicas}))
        self.haproxy = _start(["haproxy", "-f", str(config), "-db"], dict(os.environ), None)
        self.write_state()
        self.say(f"{len(self.replicas)} replica(s) starting on loopback ports "
                 f"{', '.join(str(r.port) for r in self.replicas)}; HAProxy on http://{self.bind}:{self.port}")

    def watch(self) -> int:
        """Until a signal: restart replicas that exit; return HAProxy's exit code if it exits."""
        announced = False
        while not self.stopping:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                self.say(f"HAProxy exited with code {self.haproxy.returncode}: stopping")
                return self.haproxy.returncode or 1
            for replica in self.replicas:
                if replica.process is None:
                    if replica.restart_at is not None and time.monotonic() >= replica.restart_at:
                        self.start_replica(replica)
                    continue
                code = replica.process.poll()
                if code is None:
                    continue
                # A replica that died soon after starting waits longer each time (1, 2, 4 ... 30 s by default).
                delay = self.restart_delay
                if time.monotonic() - replica.started_at < RESTART_DELAY_MAX_S:
                    delay = min(RESTART_DELAY_MAX_S, delay * 2**replica.restarts)
                self.say(f"replica {replica.name} (pid {replica.process.pid}) exited with code {code} "
                         f"(log: {self.state_dir / replica.name}.log); starting it again in {delay:g} s")
                replica.restarts += 1
                replica.process, replica.restart_at = None, time.monotonic() + delay
            if not announced:
                with contextlib.suppress(OSError):
                    states = server_states(self.state_dir / "haproxy.sock")
                    if states and all(state == "UP" for state in states.values()):
                        announced = True
                        self.say(f"all {len(states)} replicas up: open http://{self.bind}:{self.port}")
            self._sleep(0.5)
        return 0

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(0.2, left))

    def stop(self) -> None:
        """Stop HAProxy first (no new requests), then every replica; nothing is left listening."""
        self.stopping = True
        for process in [self.haproxy, *(r.process for r in self.replicas)]:
            if process is not None:
                _stop(process)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the supervisor until Ctrl-C or SIGTERM, and return its exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=None,
                        help="Streamlit processes to start (default: one per usable core)")
    parser.add_argument("--port", type=int, default=8501, help="HAProxy's port (default 8501)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="HAProxy's bind address (default 127.0.0.1; 0.0.0.0 serves the LAN)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where the HAProxy config, its stats socket and replicas.json go (default: a temp dir)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs streamlit")
    parser.add_argument("--restart-delay", type=float, default=1.0,
                        help="seconds before a replica that exited is started again (default 1)")
    parser.add_argument("--store", default=None,
                        help="class mode's store for every replica: redis://host:port/db, or sqlite:///path "
                             "(default: $DENSENET_VIZ_STORE, else one SQLite file on this machine)")
    args = parser.parse_args(argv)
    args.replicas = usable_cores() if args.replicas is None else args.replicas
    if not 1 <= args.replicas <= 64:
        parser.error(f"--replicas must be between 1 and 64, got {args.replicas}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if shutil.which("haproxy") is None:
        print("haproxy is not installed: `sudo apt-get install haproxy` (Debian/Ubuntu) and try again.",
              file=sys.stderr)
        return 2
    own_dir = args.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="densenet-viz-serve-")) if own_dir else args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(args.replicas, args.address, args.port, state_dir, args.python, args.restart_delay,
                            args.store)

    def on_signal(signum, frame) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        supervisor.start()
        code = supervisor.watch()
    finally:
        supervisor.say("stopping HAProxy and the replicas")
        supervisor.stop()
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
        supervisor.say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())

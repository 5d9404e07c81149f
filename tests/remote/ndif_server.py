"""The real NDIF API service on 127.0.0.1, for tests (test infrastructure).

Three subprocesses, all bound to loopback on free ports and each started and
stopped with bounded waits:

1. Redis: the ``redis-server`` binary when it is on PATH, else fakeredis' TCP server.
2. NDIF's API service (PyPI ``ndif`` 0.1.2, FastAPI app ``ndif.services.api.app``)
   under uvicorn. Not NDIF's ``start.sh``: it binds 0.0.0.0 and starts the
   Ray dispatcher.
3. ``ndif_worker.py``: a CPU stand-in for the dispatcher and model actor, in a
   process where ``induction_nnsight`` cannot be imported.

The service code is read from a directory installed by
``scripts/install_ndif_test_server.sh`` (``.ndif-site/``, or ``$NDIF_SITE``);
nothing is installed here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("ndif_worker.py")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


def site_dir() -> Path:
    """Where the NDIF service is installed (``$NDIF_SITE`` or ``.ndif-site/``)."""
    return Path(os.environ.get("NDIF_SITE") or REPO / ".ndif-site")


def installed() -> bool:
    return (site_dir() / "ndif" / "services" / "api" / "app.py").is_file() and (site_dir() / "uvicorn").is_dir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")  # RESP, which fakeredis needs
        return sock.recv(16).startswith(b"+PONG")


def _http_ok(url: str) -> bool:
    import httpx

    return httpx.get(url, timeout=1).status_code == 200


@dataclass
class NdifTestServer:
    """Redis + NDIF API + CPU worker serving ``model_keys``; ``host`` is the API URL."""

    model_keys: list[str]
    host: str = ""
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ndif-test-")))
    procs: list[subprocess.Popen] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, command: list[str], env: dict) -> None:
        with open(self.work / f"{name}.log", "w") as log:
            self.procs.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work, stdin=subprocess.DEVNULL
                )
            )

    def _wait(self, ready, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what}: a service exited early (status {proc.returncode})\n{self.logs()}")
            try:
                if ready():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{what}: not ready after {timeout:g} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"---- {n}.log ----\n{self.log(n)[-3000:]}" for n in ("redis", "api", "worker"))

    def start(self) -> NdifTestServer:
        site = str(site_dir())
        redis_port, api_port = free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.host = f"http://127.0.0.1:{api_port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NDIF_") and k not in ("PYTHONPATH", "NNSIGHT_CONFIG")
        }
        env.update(
            PYTHONPATH=site,
            NDIF_REDIS_URL=redis_url,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            NNSIGHT_CONFIG=str(self.work / "no-nnsight-config.yaml"),
        )
        self.env = env
        try:
            if shutil.which("redis-server") and not os.environ.get("NDIF_TEST_FAKEREDIS"):
                command = [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ]
            else:
                command = [
                    sys.executable,
                    "-c",
                    "from fakeredis import TcpFakeServer as S; "
                    f"S(('127.0.0.1', {redis_port}), server_type='redis').serve_forever()",
                ]
            self._spawn("redis", command, env)
            self._wait(lambda: _redis_ping(redis_port), "redis", 30)
            self._spawn("api", self._api_command(api_port), env)
            ready = self.work / "worker.ready"
            keys = [arg for key in self.model_keys for arg in ("--model-key", key)]
            self._spawn(
                "worker",
                [sys.executable, str(WORKER), "--redis-url", redis_url, *keys, "--ready-file", str(ready)],
                env,
            )
            self._wait(lambda: _http_ok(f"{self.host}/ping"), "NDIF API /ping")
            self._wait(ready.exists, "worker")
            self._wait(lambda: _http_ok(f"{self.host}/status"), "NDIF API /status", 30)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _api_command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "ndif.services.api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            "websockets",
            "--log-level",
            "warning",
        ]

    def second_api(self, **env: str) -> str:
        """Another API process on the same queue, with extra ``NDIF_*`` settings; returns its URL."""
        port = free_port()
        self._spawn(f"api-{port}", self._api_command(port), {**self.env, **env})
        host = f"http://127.0.0.1:{port}"
        self._wait(lambda: _http_ok(f"{host}/ping"), "second NDIF API /ping")
        return host

    def stop(self) -> None:
        """Worker, then API, then Redis: SIGTERM, a bounded wait, SIGKILL."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self.procs.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)

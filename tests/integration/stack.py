"""Real processes for the integration suite: Daphne over TLS and a Celery worker,
both on the pytest-django test database and a Redis database of their own."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import requests

from security.tls import daphne_tls_endpoint, ensure_self_signed

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The suite owns this Redis database and empties it at the start.
REDIS_TEST_DB = 15


# This run's own Celery queue and channel-layer prefix: runs side by side on one
# Redis (developers, CI) never take each other's tasks or messages.
RUN_ID = f"itest{os.getpid()}"


def channel_layer():
    """A client of the stack's channel layer, as the servers configure it."""
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=[redis_test_url()], prefix=RUN_ID)


def redis_test_url() -> str:
    parts = urlsplit(os.environ["TEST_REDIS_URL"])
    return urlunsplit(parts._replace(path=f"/{REDIS_TEST_DB}"))


def database_url(name: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    port: int
    cert: Path
    daphne: Process
    worker: Process

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        http = requests.Session()
        # Otherwise REQUESTS_CA_BUNDLE in the environment would override verify.
        http.trust_env = False
        http.verify = str(self.cert)
        return http

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def start_daphne(self) -> None:
        self.daphne.start()
        wait_until(
            lambda: self._answers(),
            30,
            lambda: f"Daphne did not start:\n{self.daphne.log()}",
        )

    def restart_daphne(self, down_for: float = 0.0) -> None:
        """Stop Daphne, stay down for ``down_for`` seconds, and start it again on the
        same port and certificate."""
        self.daphne.stop()
        time.sleep(down_for)
        self.start_daphne()

    def start_worker(self) -> None:
        mark = len(self.worker.log()) if self.worker.log_path.exists() else 0
        self.worker.start()
        wait_until(
            lambda: "ready." in self.worker.log()[mark:],
            60,
            lambda: f"the Celery worker did not start:\n{self.worker.log()}",
        )

    def _answers(self) -> bool:
        try:
            return (
                self.session().get(self.base_url + "/login/", timeout=2).status_code
                == 200
            )
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.worker.stop()
        self.daphne.stop()

    def queue_length(self) -> int:
        """Tasks waiting in both queues, routine and urgent (settings, triage)."""
        client, queue = (
            redis.Redis.from_url(self.env["REDIS_URL"]),
            self.env["CELERY_QUEUE"],
        )
        return client.llen(queue) + client.llen(f"{queue}.urgent")

    def flush_queue(self) -> None:
        queue = self.env["CELERY_QUEUE"]
        redis.Redis.from_url(self.env["REDIS_URL"]).delete(queue, f"{queue}.urgent")

    def run_task(self, task, *args) -> None:
        """Send a task to the real broker, as celery beat would."""
        task.apply_async(
            args=args, connection=self.broker(), queue=self.env["CELERY_QUEUE"]
        )

    def broker(self):
        from rpm.celery import app

        return app.connection_for_write(self.env["REDIS_URL"])


def wait_until(predicate, timeout: float, message, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(message() if callable(message) else message)


def build_stack(workdir: Path, db_name: str) -> Stack:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    ensure_self_signed(cert, key)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(db_name),
        "REDIS_URL": redis_test_url(),
        "DEBUG": "true",
        "RPM_VAR_DIR": str(workdir / "var"),
        "MPLBACKEND": "Agg",
        "CELERY_QUEUE": RUN_ID,
        "CHANNEL_PREFIX": RUN_ID,
    }
    env.pop("TEST_REDIS_URL", None)
    daphne = Process(
        "daphne",
        [
            str(BIN / "daphne"),
            "-e",
            daphne_tls_endpoint(port, cert, key),
            "rpm.asgi:application",
        ],
        env,
        workdir / "daphne.log",
    )
    worker = Process(
        "worker",
        [
            str(BIN / "celery"),
            "-A",
            "rpm",
            "worker",
            "-l",
            "INFO",
            "--concurrency",
            "2",
            "-n",
            f"itest-{port}@%h",
            "--without-gossip",
            "--without-mingle",
            # Inert unless a test asks (it lets a test kill a child mid-task).
            "--include",
            "tests.integration.worker_hooks",
        ],
        env,
        workdir / "worker.log",
    )
    return Stack(
        workdir=workdir, env=env, port=port, cert=cert, daphne=daphne, worker=worker
    )

"""One Prefect API and one trained world for the whole e2e session.

Every `train`/`score` subprocess would otherwise start its own temporary Prefect server (7 s quiet, far more on a
loaded 2-core machine); one server for the session serves them all, as a deployment's server would. The world is
generated, validated, trained and scored once.

Under pytest-xdist (``make test``) each worker that runs e2e tests starts its own server on a port of its own, and every
test using ``world`` runs on one worker (tests/conftest.py), so the world is still built once.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.cli import AS_OF, cli_env, fast_config, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` or one of its children listens on ``port``: with two xdist workers (and other sessions
    on the machine) a health answer on a port just picked could come from someone else's server."""
    import psutil

    try:
        proc = psutil.Process(pid)
        for p in (proc, *proc.children(recursive=True)):
            if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                   for c in p.net_connections(kind="tcp")):
                return True
    except psutil.Error:
        return False
    return False


def _start_prefect_server(env: dict[str, str], deadline: float) -> tuple[subprocess.Popen, str | None]:
    """A Prefect API on a free port; the URL once it answers (and is ours), else None at the deadline."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
                               "127.0.0.1", "--port", str(port), "--no-services"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200 and _listens(server.pid, port):
                    return server, url
        except OSError:
            pass
        time.sleep(0.5)
    return server, None


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    """A Prefect API server (no background services) for the CLI subprocesses of this session (of this xdist worker);
    stopped at the end.

    If it does not answer within two minutes the tests go on with Prefect's temporary per-process servers.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    env = cli_env() | {"PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    deadline = time.monotonic() + 120
    server, url = _start_prefect_server(env, deadline)
    while url is None and server.poll() is not None and time.monotonic() < deadline:
        server, url = _start_prefect_server(env, deadline)  # the port was taken meanwhile: another one
    if url:
        os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        if url:
            os.environ.pop("PREFECT_API_URL", None)
        _stop(server)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """generate -> validate -> train -> score, once, through real CLI subprocesses."""
    root = tmp_path_factory.mktemp("e2e")
    cfg = fast_config(root)
    crm = f"sqlite:///{root / 'wd' / 'crm.db'}"
    common = ["--config", str(cfg), "--crm", crm]
    out = {"root": root, "cfg": cfg, "crm": crm, "common": common, "truth": root / "truth.parquet"}
    out["generate"] = run(["generate", *common, "--accounts", "2500", "--leads", "2500", "--seed", "11",
                           "--as-of", AS_OF, "--truth", str(out["truth"])], root)
    out["validate"] = run(["validate", *common, "--as-of", AS_OF], root)
    out["train"] = run(["train", *common, "--as-of", AS_OF], root)
    out["score"] = run(["score", *common, "--as-of", AS_OF], root)
    return out

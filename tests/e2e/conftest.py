"""One Prefect API and one trained world for the whole e2e session.

Every `train`/`score` subprocess would otherwise start its own temporary Prefect server (7 s quiet, far more on a
loaded 2-core machine); one server for the session serves them all, as a deployment's server would. The world is
generated, validated, trained and scored once.
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


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    """A Prefect API server (no background services) for the CLI subprocesses of this session; stopped at the end.

    If it does not answer within two minutes the tests go on with Prefect's temporary per-process servers.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = cli_env() | {"PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-services"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    ready = False
    while time.monotonic() < deadline and server.poll() is None and not ready:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                ready = resp.status == 200
        except OSError:
            time.sleep(0.5)
    if ready:
        os.environ["PREFECT_API_URL"] = url
    try:
        yield url if ready else None
    finally:
        if ready:
            os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


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

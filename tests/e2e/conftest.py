"""One trained world for the whole e2e session: generated, validated, trained and scored once, through the CLI."""
from __future__ import annotations

import pytest

from tests.e2e.cli import AS_OF, fast_config, run


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

"""A small stored state for the report tests: a synthetic CRM (with its PII columns) whose segments, sources and ids
hold markup, and score rows written back through ``write_scores`` (two scoring dates), without a model registry.

The scores are seeded random numbers, not a model's: the report tests are about what the page shows of what is
stored (ranking, escaping, bounds, provenance links), not about model quality.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

#: Markup a hostile or careless CRM user could type into a free-text field; each would set window.__pwned if it ran.
MARKUP_SEGMENT = "<script>window.__pwned=1</script>"
MARKUP_INDUSTRY = '<img src=x onerror="window.__pwned=2">'
MARKUP_SOURCE = "</script><script>window.__pwned=3</script>"
MARKUP_ID = '<img src=y onerror="window.__pwned=4">'
MARKUPS = (MARKUP_SEGMENT, MARKUP_INDUSTRY, MARKUP_SOURCE, MARKUP_ID)
PII_COLUMNS = ("email", "full_name", "phone", "notes")
AS_OF = pd.Timestamp("2026-10-01", tz="UTC")
EARLIER = pd.Timestamp("2026-09-01", tz="UTC")


@dataclass(frozen=True)
class StoredState:
    root: Path
    crm: str
    config: Path
    markup_account: str  # an account id holding markup, scored by churn and clv
    markup_lead: str
    pii_values: tuple[str, ...]


def _reasons(rng: np.random.Generator, n: int, outcome: str, extra_value: str | None = None) -> tuple[list, list]:
    labels = ["Logins in the last 30 days", "Open support tickets", "Tenure", "Industry"]
    texts, jsons = [], []
    for i in range(n):
        picks = rng.choice(len(labels), size=2, replace=False)
        items = []
        for j in picks:
            value = extra_value if (labels[j] == "Industry" and extra_value and i % 3 == 0) else int(rng.integers(0, 40))
            items.append({"feature": f"f{j}", "label": labels[j], "value": value,
                          "contribution": round(float(rng.normal(0, 0.2)), 4)})
        jsons.append(json.dumps(items))
        texts.append("; ".join(f"{x['label']}: {x['value']} (raises {outcome})" for x in items))
    return texts, jsons


def _score_rows(rng, ids: pd.Series, model: str, entity: str, *, kind: str, version: str, outcome: str,
                markup_value: str | None) -> pd.DataFrame:
    n = len(ids)
    score = rng.gamma(2.0, 300.0, n) if kind == "regression" else rng.beta(1.5, 6.0, n)
    pct = (pd.Series(score).rank(pct=True, method="first") * 100).clip(1, 100).astype(int)
    bands = {"churn": np.where(score >= 0.4, "high", np.where(score >= 0.2, "medium", "low")),
             "clv": np.where(pct > 80, "top", np.where(pct > 40, "middle", "low"))}.get(
        model, np.where(pct > 90, "A", np.where(pct > 70, "B", np.where(pct > 40, "C", "D"))))
    texts, jsons = _reasons(rng, n, outcome, markup_value)
    return pd.DataFrame({"entity_type": entity, "entity_id": ids.to_numpy(), "model": model, "score": score,
                         "score_percentile": pct.to_numpy(), "band": bands, "reasons": jsons, "reason_text": texts,
                         "model_version": version})


def build_state(root: Path, *, n_accounts: int = 300, n_leads: int = 300, seed: int = 5) -> StoredState:
    """Generate the CRM, put markup into it, and write two scoring runs (EARLIER, then AS_OF)."""
    from crm.extract import write_extract
    from crm.synthetic import generate_world
    from crm.writeback import write_scores
    from models.bands import value_at_risk_rows
    from models.tasks import TASKS

    root.mkdir(parents=True, exist_ok=True)
    crm = f"sqlite:///{root / 'wd' / 'crm.db'}"
    (root / "wd").mkdir(exist_ok=True)
    world = generate_world(n_accounts, n_leads, seed, AS_OF)
    tables = dict(world.tables)
    acc = tables["accounts"].copy()
    markup_account = MARKUP_ID
    acc.loc[acc.index[0], "account_id"] = markup_account
    acc.loc[acc.index[:40], "segment"] = MARKUP_SEGMENT
    acc.loc[acc.index[:40], "industry"] = MARKUP_INDUSTRY
    tables["accounts"] = acc
    leads = tables["leads"].copy()
    leads.loc[leads.index[:40], "source"] = MARKUP_SOURCE
    markup_lead = "L-" + MARKUP_SOURCE
    leads.loc[leads.index[0], "lead_id"] = markup_lead
    tables["leads"] = leads
    write_extract(crm, tables)
    pii = tuple(sorted({str(v) for t in ("accounts", "leads") for c in PII_COLUMNS if c in tables[t].columns
                        for v in tables[t][c].dropna().head(200)}))
    rng = np.random.default_rng(seed)
    accounts = acc["account_id"]
    lead_ids = leads["lead_id"]
    for as_of, versions in ((EARLIER, "1"), (AS_OF, "2")):
        frames = [
            _score_rows(rng, accounts, "churn", "account", kind="binary", version=versions,
                        outcome="churn risk", markup_value=MARKUP_INDUSTRY),
            _score_rows(rng, accounts, "clv", "account", kind="regression", version=versions,
                        outcome="expected value", markup_value=MARKUP_INDUSTRY),
            _score_rows(rng, lead_ids[: len(lead_ids) // 2], "lead_mql", "lead", kind="binary", version=versions,
                        outcome="the chance of reaching SQL", markup_value=None),
            _score_rows(rng, lead_ids[len(lead_ids) // 2:], "lead_sql", "lead", kind="binary", version=versions,
                        outcome="the chance of winning", markup_value=None),
        ]
        var = value_at_risk_rows(frames[0], frames[1])
        write_scores(crm, pd.concat(frames, ignore_index=True), scoring_run_id=f"run-{as_of:%Y%m%d}", as_of=as_of,
                     scored_at=as_of + pd.Timedelta(hours=2), models=tuple(TASKS), value_at_risk=var)
    config = root / "report.yaml"
    config.write_text(f"workdir: {root / 'wd'}\nreport: {{list_rows: 25}}\nmonitoring: {{reference_bootstrap: 20}}\n")
    return StoredState(root=root, crm=crm, config=config, markup_account=markup_account, markup_lead=markup_lead,
                       pii_values=pii)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (to prove a command changed nothing)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def pii_count(engine_url: str) -> int:
    """How many PII values the CRM holds (a test that greps for them must have some to grep for)."""
    eng = sa.create_engine(engine_url)
    with eng.connect() as conn:
        n = conn.execute(sa.text("select count(email) from accounts")).scalar_one()
    eng.dispose()
    return int(n)

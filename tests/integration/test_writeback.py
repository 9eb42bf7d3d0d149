"""crm.writeback against a real SQLite file, real PostgreSQL and a real folder: round trip, replace, idempotency, rollback."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import crm.writeback as wb
from crm.errors import WriteBackError
from crm.writeback import (INPUT_COLUMNS, SCORE_COLUMNS, read_history, read_scores, read_scoring_runs,
                           read_value_at_risk, write_scores)
from models.tasks import TASKS
from tests.defaults import band_thresholds

T1 = pd.Timestamp("2026-03-01", tz="UTC")
T2 = pd.Timestamp("2026-03-02", tz="UTC")
AT1 = pd.Timestamp("2026-03-01T02:15:30.123456", tz="UTC")
AT2 = pd.Timestamp("2026-03-02T02:15:00", tz="UTC")
#: The model names the pipeline passes (pipelines/flows.py write_back).
MODELS = tuple(TASKS)


def make_scores(ids: range, models=("churn", "clv"), seed: int = 0, version: str = "3") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for m in models:
        n = len(ids)
        parts.append(
            pd.DataFrame(
                {
                    "entity_type": "lead" if m.startswith("lead") else "account",
                    "entity_id": [f"A{i:05d}" for i in ids],
                    "model": m,
                    "score": rng.random(n) * (1000 if m == "clv" else 1),
                    "score_percentile": rng.integers(1, 101, n),
                    "band": rng.choice(["high", "medium", "low"], n),
                    "reasons": [json.dumps([{"feature": "eng__logins_30d", "label": "Logins", "value": int(i), "contribution": 0.1}]) for i in ids],
                    "reason_text": [f"Logins: {i} (raises churn risk)" for i in ids],
                    "model_version": version,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "folder"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":  # an existing CRM database, as the folder below is an existing folder:
        sqlite3.connect(tmp_path / "crm.db").close()  # readers refuse a missing one (tests/unit/test_extract.py)
        return f"sqlite:///{tmp_path / 'crm.db'}"
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    folder = tmp_path / "extract"
    folder.mkdir()
    return str(folder)


def expected_rows(scores: pd.DataFrame, run_id: str, as_of: pd.Timestamp, scored_at: pd.Timestamp) -> pd.DataFrame:
    df = scores.copy()
    df["scoring_run_id"] = run_id
    df["as_of"] = as_of
    df["scored_at"] = scored_at
    return df


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    key = ["model", "entity_type", "entity_id"]
    g = got.sort_values(key, ignore_index=True)
    w = want.sort_values(key, ignore_index=True)[list(SCORE_COLUMNS)]
    assert list(g.columns) == list(SCORE_COLUMNS)
    assert len(g) == len(w)
    for c in SCORE_COLUMNS:
        if c == "score":
            np.testing.assert_allclose(g[c].to_numpy(), w[c].to_numpy(), rtol=1e-15)
        elif c in ("as_of", "scored_at"):
            assert (g[c] == w[c]).all(), c
        else:
            assert g[c].astype(object).where(g[c].notna(), None).tolist() == w[c].astype(object).where(w[c].notna(), None).tolist(), c


def test_round_trip_dtypes_and_filters(location):
    scores = make_scores(range(30))
    scores.loc[3, "reason_text"] = None  # a row without an explanation is allowed
    var = pd.DataFrame(
        {"entity_type": "account", "entity_id": ["A00001", "A00002"], "churn_probability": [0.5, 0.1], "clv": [100.0, 900.0]}
    )
    var["value_at_risk"] = var["churn_probability"] * var["clv"]
    res = write_scores(location, scores, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1, value_at_risk=var)
    assert (res.rows_written, res.history_rows_replaced, res.value_at_risk_rows) == (60, 0, 2)
    assert res.kind == ("folder" if "://" not in location else "sql")

    got = read_scores(location)
    assert got["as_of"].dtype == "datetime64[us, UTC]" and got["scored_at"].dtype == "datetime64[us, UTC]"
    assert got["score_percentile"].dtype == "Int64" and got["score"].dtype == "float64"
    assert got["reasons"].dtype == "str"
    assert got.loc[got["scored_at"].notna(), "scored_at"].iloc[0] == AT1  # microseconds survive
    assert_same_rows(got, expected_rows(scores, "run-1", T1, AT1))
    assert json.loads(got["reasons"].iloc[0])[0]["feature"] == "eng__logins_30d"

    assert set(read_scores(location, model="clv")["model"]) == {"clv"}
    assert len(read_scores(location, model="clv")) == 30
    hist = read_history(location, entity_id="A00007")
    assert sorted(hist["model"]) == ["churn", "clv"]
    assert_same_rows(read_history(location), expected_rows(scores, "run-1", T1, AT1))
    v = read_value_at_risk(location)
    assert v["entity_id"].tolist() == ["A00002", "A00001"] and v["value_at_risk"].tolist() == [90.0, 50.0]  # largest first


def test_narrow_reads_are_the_full_rows_they_select(location):
    """What the report reads at a million rows: some columns, the rows of a few ids, the distinct runs, a run's
    history; each equal to the same selection from the full read (same dtypes, same order)."""
    first = make_scores(range(40), seed=1, version="1")
    second = make_scores(range(10, 50), seed=2, version="2")
    write_scores(location, first, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    write_scores(location, second, models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2)
    cols = ["entity_id", "model", "score", "band"]
    full = read_scores(location)
    pd.testing.assert_frame_equal(read_scores(location, columns=cols), full[cols])
    ids = ["A00012", "A00049", "A00003"]  # A00003 was scored by run-1 only: not current
    got = read_scores(location, model="clv", entity_type="account", columns=["entity_id", "reasons"], entity_ids=ids)
    want = full.loc[(full["model"] == "clv") & full["entity_id"].isin(ids), ["entity_id", "reasons"]]
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    assert got["entity_id"].tolist() == ["A00012", "A00049"]

    runs = read_scoring_runs(location, history=True)
    assert runs.to_dict("list") == {"scoring_run_id": ["run-1", "run-2"], "as_of": [T1, T2], "scored_at": [AT1, AT2]}
    assert read_scoring_runs(location)["scoring_run_id"].tolist() == ["run-2"]
    hist = read_history(location)
    earlier = read_history(location, columns=cols, scoring_run_ids=["run-1"])
    pd.testing.assert_frame_equal(earlier, hist.loc[hist["scoring_run_id"] == "run-1", cols].reset_index(drop=True))
    assert len(earlier) == 80 and set(earlier["entity_id"]) == {f"A{i:05d}" for i in range(40)}
    with pytest.raises(WriteBackError, match=r"crm_scores has no column\(s\) \['reason'\]"):
        read_scores(location, columns=["entity_id", "reason"])


def test_read_before_any_write_is_empty_with_contract_columns(location):
    got = read_scores(location)
    assert got.empty and list(got.columns) == list(SCORE_COLUMNS)
    assert read_history(location).empty


def test_crm_scores_is_replaced_as_a_whole_history_appends(location):
    first = make_scores(range(0, 10), models=("churn", "clv"), seed=1)
    second = make_scores(range(5, 15), models=("churn",), seed=2, version="4")
    write_scores(location, first, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    write_scores(location, second, models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2)
    current = read_scores(location)
    # No clv rows and no A00000..A00004 left over from the first run.
    assert_same_rows(current, expected_rows(second, "run-2", T2, AT2))
    hist = read_history(location)
    assert hist.groupby("scoring_run_id").size().to_dict() == {"run-1": 20, "run-2": 10}
    assert (hist.loc[hist["scoring_run_id"] == "run-1", "as_of"] == T1).all()


def test_same_as_of_twice_is_idempotent(location):
    scores = make_scores(range(20), seed=3)
    write_scores(location, make_scores(range(40), seed=9), models=MODELS, scoring_run_id="run-0", as_of=T1 - pd.Timedelta(days=1), scored_at=AT1)
    write_scores(location, scores, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    once = read_scores(location)
    res = write_scores(location, scores, models=MODELS, scoring_run_id="run-1-retry", as_of=T1, scored_at=AT2)
    assert res.history_rows_replaced == 40
    twice = read_scores(location)
    content = [c for c in SCORE_COLUMNS if c not in ("scoring_run_id", "scored_at")]
    pd.testing.assert_frame_equal(once[content], twice[content])
    hist = read_history(location)
    # The earlier date is untouched; the re-run date holds exactly one run.
    assert hist.groupby("as_of")["scoring_run_id"].unique().map(list).to_dict() == {
        T1 - pd.Timedelta(days=1): ["run-0"],
        T1: ["run-1-retry"],
    }
    assert (hist["as_of"] == T1).sum() == 40


# For SQL: inside the transaction after the history delete, after crm_scores was emptied, after all inserts.
# For a folder: before any rename, after the temp files are fully written.
STAGES_SQL = ["history_deleted", "scores_deleted", "scores_inserted"]
STAGES_FOLDER = ["locked", "files_written", "files_written"]


@pytest.mark.parametrize("point", [0, 1, 2])
def test_failure_mid_write_leaves_previous_scores(location, point):
    stage = (STAGES_SQL if "://" in location else STAGES_FOLDER)[point]
    before_scores = make_scores(range(25), seed=4)
    write_scores(location, before_scores, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    scores_before, hist_before = read_scores(location), read_history(location)

    def boom(s: str) -> None:
        if s == stage:
            raise RuntimeError(f"injected failure at {s}")

    with pytest.raises(RuntimeError, match=f"injected failure at {stage}"):
        # same as_of: the history delete of run-1's rows must be rolled back too
        write_scores(location, make_scores(range(50), seed=5), models=MODELS, scoring_run_id="run-2", as_of=T1, scored_at=AT2, on_stage=boom)
    pd.testing.assert_frame_equal(read_scores(location), scores_before)
    pd.testing.assert_frame_equal(read_history(location), hist_before)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_database_constraint_violation_rolls_back(backend, tmp_path, request, monkeypatch):
    url = f"sqlite:///{tmp_path / 'crm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    write_scores(url, make_scores(range(10)), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    before = read_scores(url)
    real_prepare = wb._prepare_scores

    def prepare_with_null(*args, **kwargs):
        df = real_prepare(*args, **kwargs)
        df.loc[len(df) - 1, "model_version"] = None  # last row violates NOT NULL, after thousands of good inserts
        return df

    monkeypatch.setattr(wb, "_prepare_scores", prepare_with_null)
    with pytest.raises(WriteBackError, match="violated a constraint and was rolled back \\(previous scores kept\\)"):
        write_scores(url, make_scores(range(3000), seed=1), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2)
    pd.testing.assert_frame_equal(read_scores(url), before)
    assert set(read_history(url)["scoring_run_id"]) == {"run-1"}


def test_tables_have_contract_columns_keys_and_indexes(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    write_scores(url, make_scores(range(3)), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    insp = sa.inspect(sa.create_engine(url))
    assert [c["name"] for c in insp.get_columns("crm_scores")] == list(SCORE_COLUMNS)
    assert [c["name"] for c in insp.get_columns("crm_scores_history")] == list(SCORE_COLUMNS)
    assert insp.get_pk_constraint("crm_scores")["constrained_columns"] == ["entity_type", "entity_id", "model"]
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("crm_scores_history")}
    assert {("entity_id",), ("scoring_run_id",)} <= indexed
    not_null = {c["name"] for c in insp.get_columns("crm_scores") if not c["nullable"]}
    assert not_null == set(SCORE_COLUMNS) - {"reasons", "reason_text"}
    # SQLite keeps timestamps as ISO 8601 text with an explicit UTC offset (the contract's SQLite convention).
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("select as_of, scored_at from crm_scores limit 1")).one() == (
            "2026-03-01T00:00:00+00:00",
            "2026-03-01T02:15:30.123456+00:00",
        )


def test_invalid_input_is_rejected_before_touching_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    good = make_scores(range(3))
    with pytest.raises(WriteBackError, match=r"missing column\(s\) \['band'\]"):
        write_scores(url, good.drop(columns="band"), models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    bad = good.copy()
    bad.loc[0, "entity_id"] = None
    with pytest.raises(WriteBackError, match="scores.entity_id has 1 missing"):
        write_scores(url, bad, models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    with pytest.raises(WriteBackError, match=r"unknown value\(s\) \['rfm'\]. Possible values are"):
        write_scores(url, good.assign(model="rfm"), models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    with pytest.raises(WriteBackError, match="duplicate \\(entity_type, entity_id, model\\) key"):
        write_scores(url, pd.concat([good, good.iloc[:1]]), models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    with pytest.raises(WriteBackError, match="as_of=2026-03-01 00:00:00 has no time zone"):
        write_scores(url, good, models=MODELS, scoring_run_id="r", as_of=pd.Timestamp("2026-03-01"), scored_at=AT1)
    with pytest.raises(WriteBackError, match="scores is empty: writing it would empty crm_scores .*allow_empty=True"):
        write_scores(url, good.iloc[:0], models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    with pytest.raises(WriteBackError, match="score_percentile must be within 1..100"):
        write_scores(url, good.assign(score_percentile=0), models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)
    assert not sa.inspect(sa.create_engine(url)).has_table("crm_scores")


def test_model_names_are_the_callers(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    rows = make_scores(range(3), models=("churn", "upsell"))
    with pytest.raises(WriteBackError, match=r"^scores.model has unknown value\(s\) \['upsell'\]. "
                                             r"Possible values are: \['churn', 'clv'\].$") as err:
        write_scores(url, rows, models=("churn", "clv"), scoring_run_id="r", as_of=T1, scored_at=AT1)
    assert "\n" not in str(err.value)
    assert not sa.inspect(sa.create_engine(url)).has_table("crm_scores")
    # a fifth task is written as soon as the caller's registry names it
    res = write_scores(url, rows, models=(*MODELS, "upsell"), scoring_run_id="r", as_of=T1, scored_at=AT1)
    assert res.rows_written == 6
    assert sorted(read_scores(url)["model"].unique()) == ["churn", "upsell"]
    assert len(read_history(url, model="upsell")) == 3


@pytest.mark.parametrize(("models", "message"), [
    ((), r"models must name at least one model"),
    (("churn", ""), r"models must name at least one model, each a non-empty string"),
    ("churn", r"models must be a collection of model names \(e.g. tuple\(models.tasks.TASKS\)\); got 'churn'"),
    (None, r"models must be a collection of model names"),
])
def test_models_must_be_a_non_empty_collection_of_names(tmp_path, models, message):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    with pytest.raises(WriteBackError, match=message):
        write_scores(url, make_scores(range(2)), models=models, scoring_run_id="r", as_of=T1, scored_at=AT1)
    assert not sa.inspect(sa.create_engine(url)).has_table("crm_scores")


def test_empty_run_only_when_allowed(location):
    write_scores(location, make_scores(range(4)), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    with pytest.raises(WriteBackError, match="scores is empty"):
        write_scores(location, make_scores(range(0)), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2)
    assert len(read_scores(location)) == 8
    res = write_scores(location, make_scores(range(0)), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2, allow_empty=True)
    assert res.rows_written == 0 and read_scores(location).empty
    assert len(read_history(location)) == 8


def test_folder_layout_and_missing_folder(tmp_path):
    folder = tmp_path / "extract"
    folder.mkdir()
    write_scores(str(folder), make_scores(range(5)), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    names = sorted(p.name for p in (folder / "scores").iterdir())
    assert names == [".writeback.lock", "crm_scores.parquet", "crm_scores_history.parquet", "crm_value_at_risk.parquet"]
    back = pd.read_parquet(folder / "scores" / "crm_scores.parquet")
    assert list(back.columns) == list(SCORE_COLUMNS)
    assert str(back["as_of"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(WriteBackError, match="does not exist"):
        write_scores(str(tmp_path / "nope"), make_scores(range(5)), models=MODELS, scoring_run_id="r", as_of=T1, scored_at=AT1)


def test_folder_failure_between_renames_keeps_previous_current_scores_and_rerun_repairs(tmp_path):
    folder = str(tmp_path)
    write_scores(folder, make_scores(range(5), seed=1), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1)
    before = read_scores(folder)
    new = make_scores(range(8), seed=2)

    def boom(s: str) -> None:
        if s == "history_replaced":
            raise OSError("disk vanished")

    with pytest.raises(OSError, match="disk vanished"):
        write_scores(folder, new, models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2, on_stage=boom)
    pd.testing.assert_frame_equal(read_scores(folder), before)  # never a mix of runs
    assert not list((tmp_path / "scores").glob(".*.tmp-*"))  # temp files cleaned up
    write_scores(folder, new, models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT2)
    assert_same_rows(read_scores(folder), expected_rows(new, "run-2", T2, AT2))
    assert read_history(folder).groupby("scoring_run_id").size().to_dict() == {"run-1": 10, "run-2": 16}


def test_input_columns_are_the_contract_minus_run_fields():
    assert INPUT_COLUMNS + ("scoring_run_id", "as_of", "scored_at") == SCORE_COLUMNS


def test_rows_from_models_bands_and_explain_write_back_as_is(tmp_path):
    """The pure scoring helpers produce exactly what write_scores takes (a LightGBM model end to end)."""
    import lightgbm as lgb

    from models.bands import build_score_rows, value_at_risk_rows
    from models.explain import explain_batch
    from models.tasks import TASKS

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"eng__logins_30d": rng.poisson(4, 300).astype(float), "buy__tenure_days": rng.integers(1, 900, 300).astype(float)})
    y = (X["eng__logins_30d"] < 3).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": 5}, lgb.Dataset(X, y), 10)
    catalog = {"eng__logins_30d": {"label": "Logins in the last 30 days", "kind": "numeric", "unit": "count"},
               "buy__tenure_days": {"label": "Tenure", "kind": "numeric", "unit": "days"}}
    ex = explain_batch(booster.predict(X, pred_contrib=True), lambda r: 1 / (1 + np.exp(-r)), list(X.columns), X,
                       catalog, outcome=TASKS["churn"].reason_outcome, n_up=2, n_down=1)
    ids = [f"A{i:04d}" for i in range(300)]
    churn = build_score_rows("churn", "account", ids, ex.score, scheme="churn", thresholds=band_thresholds("churn"),
                             model_version="5", reasons_json=ex.reasons_json, reason_text=ex.reason_text)
    clv = build_score_rows("clv", "account", ids, rng.gamma(2, 100, 300), scheme="clv", thresholds=band_thresholds("clv"),
                           model_version="2")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    res = write_scores(url, pd.concat([churn, clv], ignore_index=True), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT1,
                       value_at_risk=value_at_risk_rows(churn, clv))
    assert res.rows_written == 600 and res.value_at_risk_rows == 300
    got = read_scores(url, model="churn").set_index("entity_id").loc[ids]
    np.testing.assert_allclose(got["score"].to_numpy(), booster.predict(X), rtol=1e-12)
    assert json.loads(got["reasons"].iloc[0])[0]["label"] in {"Logins in the last 30 days", "Tenure"}
    assert got["reason_text"].str.contains("churn risk").all()

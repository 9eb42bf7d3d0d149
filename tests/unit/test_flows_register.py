"""Registration in the training flow: only the idempotent logging task is retried; the champion gate runs once."""
from __future__ import annotations

import pytest

from pipelines import flows


def test_only_the_idempotent_registration_is_retried():
    assert flows.log_candidate.retries == 2
    assert flows.champion_gate.retries == 0


def test_register_computes_one_candidate_id_then_runs_the_gate_once(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[str, object]] = []

    def fake_log(model, data, spec, settings, report, *, candidate_id, population, as_of):
        assert (population, as_of) == ("population", "as-of")  # the drift reference's population reaches the log
        calls.append(("log", candidate_id))
        return "run-info"

    def fake_gate(model, data, spec, settings, run):
        calls.append(("gate", run))
        return "outcome"

    monkeypatch.setattr(flows, "log_candidate", fake_log)
    monkeypatch.setattr(flows, "champion_gate", fake_gate)
    assert flows.register("model", "data", "spec", "settings", "report", "population", "as-of") == "outcome"
    assert [kind for kind, _ in calls] == ["log", "gate"]
    assert calls[1][1] == "run-info"
    first_id = calls[0][1]
    assert isinstance(first_id, str) and first_id
    calls.clear()
    flows.register("model", "data", "spec", "settings", "report", "population", "as-of")
    assert calls[0][1] != first_id  # each training run is its own candidate

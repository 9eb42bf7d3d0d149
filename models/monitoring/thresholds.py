"""The monitoring thresholds: one frozen object, parsed once from configuration (no defaults here: configs/ holds
them)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from models.monitoring.errors import MonitoringInputError
from models.monitoring.stats import CORRECTIONS


@dataclass(frozen=True)
class MonitorThresholds:
    """Size and evidence thresholds of every monitoring check.

    A check fires only when the effect is large enough (size) AND unlikely under "nothing changed" (evidence: a
    p-value below ``alpha``, after the ``correction`` across features for feature drift).

    Attributes
    ----------
    min_rows : fewer rows than this (in the run, or in the reference of a feature) gives "insufficient", never ok
        or alert.
    alpha : evidence level of every test (per run, family-wise for feature drift with Holm).
    correction : "holm" (family-wise error) or "bh" (false discovery rate) across the features of one run.
    psi_warn, psi_alert : PSI sizes for warn and alert (features and the score distribution).
    catastrophic_score_psi : a score PSI at or above this blocks the write-back.
    max_identical_share : more than this share of identical scores blocks the write-back.
    mean_shift_warn, mean_shift_alert : relative gap between the run's mean score and the reference base rate
        (``|mean / base_rate - 1|``).
    min_rank_stability : Spearman correlation with the previous run's scores (common entities) below this warns.
    calibration_tolerance : matured runs: ``|observed / expected positives - 1|`` beyond this (with evidence) is a
        calibration alert; the same tolerance grades the estimator's expected positives.
    auc_drop_alert : matured runs: realized AUC this far below the reference AUC (with evidence) is an alert.
    estimate_auc_tolerance : an estimated AUC further than this from the realized one marks the estimator unreliable.
    level : confidence level of every interval (reference metrics, estimates, rates).
    """

    min_rows: int
    alpha: float
    correction: str
    psi_warn: float
    psi_alert: float
    catastrophic_score_psi: float
    max_identical_share: float
    mean_shift_warn: float
    mean_shift_alert: float
    min_rank_stability: float
    calibration_tolerance: float
    auc_drop_alert: float
    estimate_auc_tolerance: float
    level: float

    def __post_init__(self) -> None:
        problems = []
        if self.min_rows < 1:
            problems.append(f"min_rows={self.min_rows} (expected >= 1)")
        for name in ("alpha", "level", "max_identical_share"):
            value = getattr(self, name)
            if not 0 < value < 1:
                problems.append(f"{name}={value} (expected strictly between 0 and 1)")
        if self.correction not in CORRECTIONS:
            problems.append(f"correction={self.correction!r} (expected one of {sorted(CORRECTIONS)})")
        if not 0 < self.psi_warn <= self.psi_alert <= self.catastrophic_score_psi:
            problems.append(f"psi_warn={self.psi_warn}, psi_alert={self.psi_alert}, catastrophic_score_psi="
                            f"{self.catastrophic_score_psi} (expected 0 < warn <= alert <= catastrophic)")
        if not 0 < self.mean_shift_warn <= self.mean_shift_alert:
            problems.append(f"mean_shift_warn={self.mean_shift_warn}, mean_shift_alert={self.mean_shift_alert} "
                            "(expected 0 < warn <= alert)")
        if problems:
            raise MonitoringInputError("monitoring thresholds out of range: " + "; ".join(problems) + ".")

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> MonitorThresholds:
        """From a mapping with exactly the field names (the ``monitoring`` block of the configuration)."""
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - set(values)), sorted(set(values) - names)
        if missing or unknown:
            raise MonitoringInputError(f"monitoring thresholds: missing {missing}, unknown {unknown}; expected exactly "
                                       f"{sorted(names)}.")
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

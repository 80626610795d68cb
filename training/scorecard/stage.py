"""The reason-code stage of a credit job: the scorecard behind the reasons (always
fitted, whichever candidate wins), and its table and information values for the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from riskserve.model.specs import ModelSpec
from riskserve.training.competition.compete import Entry, Splits
from riskserve.training.dataset import JobConfig
from riskserve.training.decision_graph import ScoreScaling
from riskserve.training.progress import Progress
from riskserve.training.scorecard.candidate import ScorecardCandidate
from riskserve.training.scorecard.reason_codes import CreditReasons, credit_reasons
from riskserve.training.winner import NativeModel


def reason_scorecard(
    spec: ModelSpec, entries: list[Entry], splits: Splits, seed: int, progress: Progress
) -> ScorecardCandidate:
    """The competition's scorecard when it took part, else one fitted here on train +
    validation with its defaults."""
    fitted = next((e for e in entries if e.name == "scorecard" and e.ok), None)
    if fitted is not None:
        candidate = fitted.fitted
        if not isinstance(candidate, ScorecardCandidate):
            raise TypeError(
                f"the competition's scorecard is a {type(candidate).__name__}, "
                "not a ScorecardCandidate: it cannot give reason codes"
            )
        return candidate
    progress.stage("fitting the scorecard for reason codes (not in the competition)")
    scorecard = ScorecardCandidate(spec, seed)
    scorecard.fit(
        splits.fit_x,
        splits.fit_y,
        None,
        None,
        scorecard.default_params(len(splits.fit_y)),
    )
    return scorecard


def winner_reasons(
    scorecard: ScorecardCandidate,
    native: NativeModel,
    config: JobConfig,
    progress: Progress,
) -> CreditReasons:
    """The scorecard's reason codes for the credit winner: exact when the scorecard
    won, else beside the winner's PD."""
    is_scorecard = native.entry.candidate is scorecard
    reasons = credit_reasons(
        scorecard,
        is_scorecard,
        config.scaling.factor,
        native.calibration,
        config.reasons,
    )
    progress.stage(
        f"reason codes: top {reasons.k} per row, "
        + (
            "exact (the scorecard's own points, feature_points output too)"
            if is_scorecard
            else f"the scorecard's beside {native.entry.name}'s PD (an approximation)"
        )
    )
    return reasons


@dataclass
class ScorecardReport:
    """What the run logs about the scorecard: its table (feature, bin, count, event
    rate, WoE, points) and the information values as CSV and HTML, one metric each."""

    tables: dict[str, pd.DataFrame]
    document: Path
    metrics: dict[str, float]


def scorecard_report(
    reasons: CreditReasons,
    native: NativeModel,
    scaling: ScoreScaling,
    work_dir: Path,
) -> ScorecardReport:
    scorecard = reasons.scorecard
    calibration = native.calibration if native.entry.candidate is scorecard else None
    table = scorecard.scorecard_table(
        scaling.factor,
        calibration.slope if calibration else 1.0,
        calibration.intercept if calibration else 0.0,
    )
    ivs = scorecard.information_values()
    html = work_dir / "scorecard.html"
    html.write_text(
        "<h2>Scorecard</h2>"
        f"<p>credit_score = {scaling.offset:.4f} + the sum of points</p>"
        + table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        + "<h2>Information value</h2>"
        + ivs.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    )
    return ScorecardReport(
        tables={"scorecard.csv": table, "information_value.csv": ivs},
        document=html,
        metrics={
            f"iv_{feature}": float(iv)
            for feature, iv in zip(ivs["feature"], ivs["iv"], strict=True)
        },
    )

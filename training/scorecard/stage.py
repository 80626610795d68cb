"""The reason-code stage of a credit job: the scorecard behind the reasons (always
fitted, whichever candidate wins), and its table and information values in the run."""

from __future__ import annotations

from training.candidates.competition import Entry, Splits
from training.dataset import JobConfig
from training.reason_codes import CreditReasons, credit_reasons


def add_credit_reasons(
    config: JobConfig,
    spec,
    entries: list[Entry],
    native,
    splits: Splits,
    progress,
) -> CreditReasons:
    """The scorecard's reason codes for any credit winner. The scorecard is always
    fitted: the competition's when it took part, else once here on train + validation
    with its defaults."""
    from training.candidates.scorecard import ScorecardCandidate

    fitted = next((e for e in entries if e.name == "scorecard" and e.ok), None)
    if fitted is not None:
        scorecard = fitted.candidate
    else:
        progress.stage(
            "fitting the scorecard for reason codes (not in the competition)"
        )
        scorecard = ScorecardCandidate(spec, config.seed)
        scorecard.fit(
            splits.fit_x,
            splits.fit_y,
            None,
            None,
            scorecard.default_params(len(splits.fit_y)),
        )
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


def log_scorecard(
    reasons: CreditReasons, config: JobConfig, winner: Entry, native, evaluation
) -> None:
    """The scorecard table (feature, bin, count, event rate, WoE, points) as CSV and
    HTML, and the information value per feature (a table and one metric each)."""
    scorecard = reasons.scorecard
    calibration = native.calibration if winner.candidate is scorecard else None
    table = scorecard.scorecard_table(
        config.scaling.factor,
        calibration.slope if calibration else 1.0,
        calibration.intercept if calibration else 0.0,
    )
    ivs = scorecard.information_values()
    evaluation.tables["scorecard.csv"] = table
    evaluation.tables["information_value.csv"] = ivs
    html = evaluation.work_dir / "scorecard.html"
    html.write_text(
        "<h2>Scorecard</h2>"
        f"<p>credit_score = {config.scaling.offset:.4f} + the sum of points</p>"
        + table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        + "<h2>Information value</h2>"
        + ivs.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    )
    evaluation.documents.append(html)
    for row in ivs.itertuples():
        evaluation.metrics[f"iv_{row.feature}"] = float(row.iv)

"""The validation report of one registered version: one self-contained HTML page
(inline PNG plots, inline CSS, no script), printable, built from what the registry
holds for the version. Every string that comes from data, the registry or the user
is escaped: the page is opened in a browser and any of them may be hostile."""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from riskserve.governance import metrics, plots
from riskserve.governance.live_traffic import LiveTraffic
from riskserve.governance.registered_version import LABEL_COLUMN, RegisteredVersion
from riskserve.governance.status import status_of, trail_of
from riskserve.model.fairness import FOUR_FIFTHS, MIN_GROUP_ROWS, FairnessResult
from riskserve.model.reference_profile import category_keys

PURPOSE = {
    "credit": "Probability that a credit applicant defaults, the credit score scaled "
    "from it, the approve/decline decision at the cut-off, and the principal reasons "
    "of each decision (adverse-action reason codes).",
    "fraud": "Probability that a card transaction is fraudulent, and the flag at the "
    "decision threshold.",
}
BOOTSTRAP_ROUNDS = 500
PSI_WATCH, PSI_ACT = (
    0.1,
    0.25,
)  # the usual reading: below 0.1 stable, above 0.25 shifted

STYLE = """
body{font-family:Helvetica,Arial,sans-serif;max-width:60em;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}
.flag{color:#b03a2e;font-weight:bold}.ok{color:#1e8449}
.plots img{margin:.3em;max-width:48%}
@media print{h2{page-break-after:avoid}table,img{page-break-inside:avoid}}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: object, digits: int = 4) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return esc(value)


def table_html(frame: pd.DataFrame, digits: int = 4) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{number(v, digits)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs_html(rows: Sequence[tuple[str, object]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{esc(k)}</th><td>{number(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


@dataclass
class ReportInputs:
    version: RegisteredVersion
    owner: str
    fairness: FairnessResult | None = None
    fairness_source: str = ""
    data_scores: np.ndarray | None = None  # --data rows' probabilities (score PSI)
    live: LiveTraffic | None = None  # the version's traffic in the inference log
    generated_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )


@dataclass
class Outputs:
    """The holdout as training/job.py logged it."""

    y: np.ndarray
    probability: np.ndarray
    score: np.ndarray | None
    favourable: np.ndarray  # approved (credit), not flagged (fraud)
    reasons: pd.Series | None


def holdout_outputs(version: RegisteredVersion) -> Outputs:
    frame = version.holdout
    probability_column = (
        "__default_probability__"
        if version.kind == "credit"
        else "__fraud_probability__"
    )
    missing = [c for c in (LABEL_COLUMN, probability_column) if c not in frame]
    if missing:
        raise ValueError(f"the holdout predictions have no column {missing[0]!r}")
    if version.kind == "credit":
        favourable = _bool(frame["__approved__"])
    else:
        favourable = ~_bool(frame["__is_fraud__"])
    return Outputs(
        y=frame[LABEL_COLUMN].to_numpy(np.float64),
        probability=frame[probability_column].to_numpy(np.float64),
        score=(
            frame["__credit_score__"].to_numpy(np.float64)
            if "__credit_score__" in frame
            else None
        ),
        favourable=favourable,
        reasons=frame.get("__reason_codes__"),
    )


def _bool(column: pd.Series) -> np.ndarray:
    return column.astype(str).str.lower().isin(["true", "1"]).to_numpy()


def build(inputs: ReportInputs) -> str:
    v = inputs.version
    out = holdout_outputs(v)
    limitations: list[str] = []
    sections = [
        purpose_section(inputs),
        data_section(v, limitations),
        candidates_section(v),
        discrimination_section(out, limitations),
        calibration_section(v, out),
        strategy_section(v),
        stability_section(inputs, limitations),
        reasons_section(v, out, limitations),
        fairness_section(inputs, limitations),
        status_section(v, limitations),
    ]
    title = f"Validation report: {v.name} v{v.version}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>Generated {esc(inputs.generated_at)} from the MLflow registry (run "
        f"{esc(v.run_id)}). Figures on the holdout are recomputed from the holdout "
        f"predictions the training job logged ({len(out.y)} rows).</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def purpose_section(inputs: ReportInputs) -> str:
    v = inputs.version
    created = (
        dt.datetime.fromtimestamp(v.created_ms / 1000, dt.UTC).isoformat(
            timespec="seconds"
        )
        if v.created_ms
        else "unknown"
    )
    rows: list[tuple[str, object]] = [
        ("model", f"{v.name} v{v.version}"),
        ("kind", v.kind),
        ("owner", inputs.owner or "not recorded (--owner, or the model's owner tag)"),
        ("registered", created),
        ("winning candidate", v.tags.get("candidate", "")),
        ("source commit", v.tags.get("git_commit", "")),
    ]
    purpose = PURPOSE.get(v.kind, "")
    description = (
        f"<p>Registry description: {esc(v.description)}</p>" if v.description else ""
    )
    return (
        f"<h2>1. Purpose and owner</h2><p>{esc(purpose)}</p>{description}"
        + pairs_html(rows)
    )


def data_section(v: RegisteredVersion, limitations: list[str]) -> str:
    rows = int(v.params.get("rows", "0") or 0)
    positives = v.params.get("positive_rows")
    target_rate = v.metrics.get("positive_rate")
    pairs: list[tuple[str, object]] = [
        ("source", v.params.get("data_source", "not recorded")),
        ("rows", rows),
        ("target", v.params.get("target", "") or "not recorded"),
        ("event value", v.params.get("positive", "") or "1 / true"),
        (
            "target rate (all rows)",
            int(positives) / rows if positives and rows else "not recorded",
        ),
        ("target rate (holdout)", target_rate if target_rate is not None else "n/a"),
        ("data hash (sha256 of the rows, first 16 hex)", v.params.get("data_hash", "")),
        ("time range", "not recorded: the training rows carry no time column"),
        ("holdout rows", len(v.holdout)),
    ]
    limitations.append(
        "The training data's time range is not recorded, so the report cannot say "
        "whether the holdout is out of time; it is a random stratified 15%."
    )
    missing = ""
    if v.profile is not None:
        frame = pd.DataFrame(
            [
                {
                    "feature": name,
                    "kind": column.kind,
                    "missing_rate": column.missing_rate,
                }
                for name, column in v.profile.features.items()
            ]
        )
        missing = "<h3>Missing values (training rows)</h3>" + table_html(frame)
    return "<h2>2. Data</h2>" + pairs_html(pairs) + missing


def candidates_section(v: RegisteredVersion) -> str:
    table = v.comparison
    if table is None:
        return "<h2>3. Candidates</h2><p>No comparison table was logged.</p>"
    cv = next((c for c in table.columns if c.startswith("cv_") and "_std" not in c), "")
    shown = table.drop(columns=[c for c in ("error",) if c in table])
    why = ""
    ok = table[table["status"].isin(["winner", "ok"])].sort_values(cv, ascending=False)
    if cv and len(ok):
        best = ok.iloc[0]
        why = (
            f"<p>{esc(best['candidate'])} won on the ranking metric, {esc(cv)} "
            f"{best[cv]:.4f} (cross-validated on the same folds as every candidate; "
            "the holdout columns are for information and never chose the winner)"
        )
        if len(ok) > 1:
            second = ok.iloc[1]
            gap = float(best[cv] - second[cv])
            std_column = f"{cv}_std"
            spread = float(best.get(std_column, float("nan")))
            why += (
                f"; the runner-up {esc(second['candidate'])} scored "
                f"{second[cv]:.4f}, a gap of {gap:.4f}"
                + (
                    f" against a fold-to-fold spread of {spread:.4f}"
                    if not math.isnan(spread) and spread > 0
                    else ""
                )
            )
        why += ".</p>"
    failed = table[table["status"] == "failed"]
    failures = "".join(
        f"<p>{esc(r['candidate'])} failed: {esc(str(r.get('error', ''))[:300])}</p>"
        for _, r in failed.iterrows()
    )
    return "<h2>3. Candidates</h2>" + table_html(shown) + why + failures


def discrimination_section(out: Outputs, limitations: list[str]) -> str:
    stats = {
        name: metrics.bootstrap(name, out.y, out.probability, BOOTSTRAP_ROUNDS)
        for name in ("roc_auc", "gini", "ks", "average_precision")
    }
    fpr, tpr = metrics.roc_curve(out.y, out.probability)
    recall, precision = metrics.pr_curve(out.y, out.probability)
    rows = [(name, str(interval)) for name, interval in stats.items()]
    width = stats["gini"].high - stats["gini"].low
    if width > 0.15:
        limitations.append(
            f"The holdout is small ({len(out.y)} rows): the Gini's 95% interval is "
            f"{width:.2f} wide."
        )
    return (
        "<h2>4. Discrimination</h2><p>On the holdout, with 95% bootstrap intervals "
        f"({BOOTSTRAP_ROUNDS} stratified resamples).</p>"
        + pairs_html(rows)
        + '<div class="plots">'
        + image(plots.roc_plot(fpr, tpr, stats["roc_auc"].value), "ROC curve")
        + image(
            plots.pr_plot(
                recall,
                precision,
                stats["average_precision"].value,
                float(out.y.mean()),
            ),
            "precision-recall curve",
        )
        + "</div>"
    )


def calibration_section(v: RegisteredVersion, out: Outputs) -> str:
    bins = metrics.calibration_bins(out.y, out.probability)
    brier = metrics.bootstrap("brier", out.y, out.probability, BOOTSTRAP_ROUNDS)
    calibrated = v.params.get("calibrated", "")
    band_table = ""
    if out.score is not None:
        order = np.argsort(out.score, kind="stable")
        rows = []
        for chunk in np.array_split(order, 10):
            if chunk.size == 0:
                continue
            rows.append(
                {
                    "score band": f"{out.score[chunk].min():.0f}-"
                    f"{out.score[chunk].max():.0f}",
                    "rows": int(chunk.size),
                    "mean predicted PD": float(out.probability[chunk].mean()),
                    "observed default rate": float(out.y[chunk].mean()),
                }
            )
        band_table = "<h3>By score band (riskiest first)</h3>" + table_html(
            pd.DataFrame(rows)
        )
    return (
        "<h2>5. Calibration</h2>"
        + pairs_html(
            [
                ("Brier score (holdout, 95% interval)", str(brier)),
                ("Platt calibration kept by training", calibrated or "not recorded"),
                ("Brier out-of-fold, before", v.metrics.get("brier_oof_uncalibrated")),
                ("Brier out-of-fold, after", v.metrics.get("brier_oof_calibrated")),
            ]
        )
        + image(
            plots.reliability_plot(
                [b["predicted"] for b in bins], [b["observed"] for b in bins]
            ),
            "reliability plot",
        )
        + band_table
    )


def strategy_section(v: RegisteredVersion) -> str:
    if v.kind != "credit":
        threshold = v.tags.get("threshold", "not recorded")
        return (
            "<h2>6. Decision threshold</h2>"
            f"<p>Flag at probability {esc(threshold)} or above.</p>"
        )
    head = pairs_html(
        [
            ("cut-off score (approve at or above)", v.tags.get("cutoff", "")),
            ("cut-off policy", v.tags.get("cutoff_policy", "")),
            ("score scaling", v.tags.get("score_scaling", "")),
            ("approval rate (holdout)", v.metrics.get("approval_rate")),
            ("bad rate among the approved", v.metrics.get("approved_bad_rate")),
            ("profit per applicant", v.metrics.get("profit_per_applicant")),
        ]
    )
    table = table_html(v.strategy, 3) if v.strategy is not None else "<p>none</p>"
    return "<h2>6. Strategy table and cut-off</h2>" + head + table


def _psi_of(column: object, values: pd.Series) -> float:
    from riskserve.model.reference_profile import ColumnProfile

    assert isinstance(column, ColumnProfile)
    if column.kind == "numeric":
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        return metrics.psi(column.counts, metrics.binned_counts(numeric, column.edges))
    keys = category_keys(values.dropna().to_numpy())
    known = list(column.categories)
    seen = pd.Series(keys).value_counts()
    actual = [float(seen.get(k, 0)) for k in known]
    unseen = float(seen[[k for k in seen.index if k not in column.categories]].sum())
    return metrics.psi([*column.categories.values(), 0.0], [*actual, unseen])


def _psi_word(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value < PSI_WATCH:
        return "stable"
    return "watch" if value < PSI_ACT else "shifted"


def stability_section(inputs: ReportInputs, limitations: list[str]) -> str:
    v = inputs.version
    if v.profile is None:
        limitations.append("No reference profile was logged: stability not assessed.")
        return "<h2>7. Stability</h2><p>No reference profile was logged.</p>"
    live = inputs.live if inputs.live is not None and inputs.live.rows else None
    rows = []
    for name, column in v.profile.features.items():
        if name not in v.holdout:
            continue
        value = _psi_of(column, v.holdout[name])
        row: dict[str, object] = {
            "feature": name,
            "psi holdout": value,
            "reading": _psi_word(value),
        }
        if live is not None:
            if name in live.inputs:
                live_value = _psi_of(column, live.inputs[name])
                row |= {"psi live": live_value, "live reading": _psi_word(live_value)}
            else:
                row |= {"psi live": float("nan"), "live reading": "not logged"}
        rows.append(row)
    against = "the holdout" + (" and live traffic" if live is not None else "")
    text = (
        "<p>PSI of each feature between the training rows (the version's reference "
        f"profile) and {against}; below 0.1 stable, 0.1 to 0.25 watch, above 0.25 "
        "shifted.</p>" + table_html(pd.DataFrame(rows))
    )
    score_name = "default_probability" if v.kind == "credit" else "fraud_probability"
    reference = v.profile.outputs.get(score_name)
    if inputs.data_scores is not None and reference is not None:
        value = metrics.psi(
            reference.counts, metrics.binned_counts(inputs.data_scores, reference.edges)
        )
        text += (
            f"<p>Score PSI, holdout against the --data rows ({len(inputs.data_scores)}"
            f"): {value:.4f} ({_psi_word(value)}).</p>"
        )
    text += _live_score(inputs, score_name, reference, limitations)
    return "<h2>7. Stability</h2>" + text


def _live_score(
    inputs: ReportInputs,
    score_name: str,
    reference: object,
    limitations: list[str],
) -> str:
    """The live traffic's line: where, how much, and the score's PSI against the
    holdout; or why there is none (a limitation)."""
    live, version = inputs.live, inputs.version.version
    if live is None:
        limitations.append(
            "No inference log was given (--log): stability against live traffic not "
            "assessed."
        )
        return ""
    others = ", ".join(f"v{k}: {n}" for k, n in sorted(live.other_versions.items()))
    source = (
        f"{esc(live.where)}: {live.records} {live.stage} records of v{esc(version)}"
        + (f", {live.corrupt} unreadable lines skipped" if live.corrupt else "")
        + (f"; other versions' rows left out ({esc(others)})" if others else "")
    )
    if not live.rows:
        limitations.append(
            f"The inference log holds no traffic of v{version}: stability against "
            "live traffic not assessed."
        )
        return f"<p>Live traffic ({source}): none.</p>"
    text = (
        f"<p>Live traffic ({source}): {live.rows} rows from {esc(live.first)} to "
        f"{esc(live.last)}.</p>"
    )
    from riskserve.model.reference_profile import ColumnProfile

    if isinstance(reference, ColumnProfile) and score_name in live.outputs:
        scores = pd.to_numeric(live.outputs[score_name], errors="coerce")
        value = metrics.psi(
            reference.counts,
            metrics.binned_counts(scores.to_numpy(np.float64), reference.edges),
        )
        text += (
            f"<p>Score PSI, holdout against live traffic: {value:.4f} "
            f"({_psi_word(value)}).</p>"
        )
        if value >= PSI_ACT:
            limitations.append(
                f"Live scores have shifted from the holdout (PSI {value:.2f}): the "
                "figures above may not hold for today's applicants."
            )
    return text


def reasons_section(v: RegisteredVersion, out: Outputs, limitations: list[str]) -> str:
    if out.reasons is None:
        return "<h2>8. Reason codes</h2><p>This model kind gives no reason codes.</p>"
    declined = ~out.favourable
    texts = out.reasons.fillna("").astype(str)
    covered = texts[declined].str.strip() != ""
    first = texts[declined].str.split(" | ", regex=False).str[0].str.split(":").str[0]
    top = first.value_counts().head(10)
    method = v.tags.get("reason_method", "not recorded")
    pairs: list[tuple[str, object]] = [
        ("reasons per decision (K)", v.tags.get("reason_codes_k", "")),
        ("how reasons are computed", method),
        ("declined holdout rows", int(declined.sum())),
        (
            "declined rows with at least one reason",
            float(covered.mean()) if len(covered) else float("nan"),
        ),
    ]
    if method != "scorecard":
        limitations.append(
            f"Reason codes come from {method}, an approximation of the winner: check "
            "their agreement with the model before relying on them in notices."
        )
    frame = pd.DataFrame({"first reason": top.index, "declined rows": top.to_numpy()})
    return (
        "<h2>8. Reason codes</h2>"
        + pairs_html(pairs)
        + "<h3>Most frequent first reason of a decline</h3>"
        + table_html(frame)
    )


def fairness_section(inputs: ReportInputs, limitations: list[str]) -> str:
    result = inputs.fairness
    protected = inputs.version.protected_columns
    named = (
        f"<p>Columns named protected at training (never model inputs): "
        f"{esc(', '.join(protected))}.</p>"
        if protected
        else "<p>No column was named protected at training.</p>"
    )
    if result is None:
        limitations.append(
            "Fair lending was not tested: run the report with --data FILE "
            "--protected COL."
        )
        return (
            "<h2>9. Fairness</h2>" + named + "<p>Not tested: give --data FILE "
            "--protected COL.</p>"
        )
    if result.flagged:
        limitations.append(
            f"Adverse impact ratio below {FOUR_FIFTHS} for {result.protected}: "
            + ", ".join(result.flagged)
        )
    verdict = (
        f'<p class="flag">AIR below {FOUR_FIFTHS} (four-fifths rule) for: '
        f"{esc(', '.join(result.flagged))}.</p>"
        if result.flagged
        else f'<p class="ok">No group has an AIR below {FOUR_FIFTHS}.</p>'
    )
    table = result.table.copy()
    table["flagged"] = table["flagged"].map(lambda f: "AIR < 0.8" if f else "")
    return (
        "<h2>9. Fairness</h2>"
        + named
        + f"<p>Protected attribute {esc(result.protected)} on "
        f"{esc(inputs.fairness_source)}; decisions by the version's own graph; "
        f"reference group (highest approval rate, {MIN_GROUP_ROWS}+ rows): "
        f"{esc(result.reference_group)}. Groups under {MIN_GROUP_ROWS} rows are "
        "shown, not judged.</p>"
        + verdict
        + table_html(table)
        + image(
            plots.air_plot(
                table["group"].astype(str).tolist(),
                [0.0 if math.isnan(a) else float(a) for a in result.table["air"]],
                FOUR_FIFTHS,
            ),
            "adverse impact ratio by group",
        )
    )


def status_section(v: RegisteredVersion, limitations: list[str]) -> str:
    trail = trail_of(v.tags)
    frame = pd.DataFrame(
        [
            {
                "#": e.seq,
                "status": e.status,
                "by": e.by,
                "at": e.at,
                "report sha256": e.report_sha256[:16],
                "note": e.note,
            }
            for e in trail
        ]
    )
    items = "".join(f"<li>{esc(text)}</li>" for text in limitations)
    return (
        f"<h2>10. Limitations and approval status</h2><ul>{items}</ul>"
        f"<p>Status before this report: <b>{esc(status_of(v.tags))}</b>. Recording "
        "this report makes a draft validated; a named person then approves or rejects "
        "it against this report's sha256 (riskserve approve | reject).</p>"
        + (table_html(frame) if len(frame) else "<p>No trail entries yet.</p>")
    )

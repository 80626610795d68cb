"""HTML for answers, errors and histograms: plain functions of data, tested without a UI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from riskserve.app.v2_client import InferenceResult, ModelMetadata
from riskserve.model.specs import (
    APPROVED,
    CREDIT,
    CREDIT_SCORE,
    DEFAULT_PROBABILITY,
    FRAUD,
    FRAUD_PROBABILITY,
    IS_FRAUD,
    REASON_CODES,
)

RED, GREEN, AMBER, GREY = "#c62828", "#2e7d32", "#ef6c00", "#9e9e9e"
SERIES_COLOURS = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457")

# A transformer's answer: the predictor's outputs, the features it computed, and two
# flags (riskserve.transformer's outputs; the app reads them by name only).
UNKNOWN_ENTITY = "unknown_entity"
FEATURES_UNAVAILABLE = "features_unavailable"
DECISION_OUTPUTS = frozenset(
    {
        FRAUD_PROBABILITY,
        IS_FRAUD,
        DEFAULT_PROBABILITY,
        CREDIT_SCORE,
        APPROVED,
        REASON_CODES,
        "feature_points",
    }
)
ENTITY_WORDS = {"fraud": "card", "credit": "customer"}

# The score scaling of DESIGN.md, when a model's metadata does not carry its own.
DEFAULT_BASE_SCORE, DEFAULT_BASE_ODDS, DEFAULT_PDO = 600.0, 50.0, 20.0


def error_html(message: str) -> str:
    return (
        f'<div class="rs-error" role="alert" style="border-left:4px solid {RED};'
        f'padding:8px 12px;background:#fdecea;color:#611a15">{escape(message)}</div>'
    )


def note_html(message: str) -> str:
    return (
        f'<div class="rs-note" style="color:#555;padding:4px 0">{escape(message)}</div>'
    )


def _served_by(result: InferenceResult) -> str:
    revision = result.revision or "not reported"
    return (
        '<div class="rs-served-by" style="color:#555;font-size:0.9em;margin-top:8px">'
        f"model <b>{escape(result.model_name)}</b> · version "
        f'<b class="rs-version">{escape(result.model_version)}</b> · serving revision '
        f'<b class="rs-revision">{escape(revision)}</b></div>'
    )


def probability_bar(probability: float, marker: float | None, colour: str) -> str:
    width = max(0.0, min(1.0, probability)) * 100
    mark = ""
    if marker is not None and 0 <= marker <= 1:
        mark = (
            f'<div title="threshold {marker:g}" style="position:absolute;top:-4px;'
            f'bottom:-4px;left:{marker * 100:.2f}%;width:2px;background:#212121"></div>'
        )
    return (
        '<div class="rs-bar" style="position:relative;height:22px;background:#eee;'
        'border-radius:4px;margin:6px 0">'
        f'<div style="height:100%;width:{width:.2f}%;background:{colour};'
        f'border-radius:4px"></div>{mark}</div>'
    )


def fraud_answer_html(result: InferenceResult, metadata: ModelMetadata) -> str:
    probability = float(result.outputs[FRAUD_PROBABILITY][0])
    flagged = bool(result.outputs[IS_FRAUD][0]) if IS_FRAUD in result.outputs else None
    threshold = metadata.parameter("threshold")
    if flagged is None and threshold is not None:
        flagged = probability >= threshold
    at = f" (threshold {threshold:.4g})" if threshold is not None else ""
    if flagged:
        decision = f'<span style="color:{RED}">FRAUD: block and review</span>{at}'
    else:
        decision = f'<span style="color:{GREEN}">not fraud: accept</span>{at}'
    return (
        '<div class="rs-answer rs-fraud">'
        f'<div style="font-size:1.2em">Fraud probability <b class="rs-probability">'
        f"{probability:.4f}</b> ({probability:.1%})</div>"
        f"{probability_bar(probability, threshold, RED if flagged else GREEN)}"
        f'<div class="rs-decision" style="font-size:1.1em">Decision: {decision}</div>'
        f"{computed_features_html(result, 'fraud', FRAUD.feature_names)}"
        f"{_served_by(result)}</div>"
    )


def computed_features_html(
    result: InferenceResult, kind: str, model_features: Sequence[str]
) -> str:
    """What a transformer adds to the answer: whether it knew the entity, and the
    features it computed (the model's own inputs marked). Empty for a bare
    predictor's answer."""
    extra = [
        name
        for name in result.outputs
        if name not in DECISION_OUTPUTS
        and name not in (UNKNOWN_ENTITY, FEATURES_UNAVAILABLE)
    ]
    flags = {
        name: bool(_first(result.outputs[name]))
        for name in (UNKNOWN_ENTITY, FEATURES_UNAVAILABLE)
        if name in result.outputs
    }
    if not extra and not flags:
        return ""
    entity = ENTITY_WORDS.get(kind, "entity")
    notes = []
    if flags.get(UNKNOWN_ENTITY):
        notes.append(
            f'<div class="rs-unknown" style="color:{AMBER};font-weight:bold">Unknown '
            f"{entity}: no history, scored on the documented defaults.</div>"
        )
    elif UNKNOWN_ENTITY in flags:
        notes.append(
            f'<div class="rs-known" style="color:#555">Known {entity}: its features '
            "come from its history.</div>"
        )
    if flags.get(FEATURES_UNAVAILABLE):
        notes.append(
            f'<div class="rs-unavailable" style="color:{RED};font-weight:bold">'
            "The feature store was down: scored on request-only defaults "
            "(fail-open).</div>"
        )
    rows = "".join(
        f'<tr class="rs-feature" data-name="{escape(name)}"><td>{escape(name)}'
        f"{' <small>(model input)</small>' if name in model_features else ''}"
        f'</td><td class="rs-feature-value" style="text-align:right">'
        f"{escape(_feature_text(_first(result.outputs[name])))}</td></tr>"
        for name in extra
    )
    table = (
        '<table class="rs-features" style="font-size:0.85em;margin-top:4px">'
        f"{rows}</table>"
        if rows
        else ""
    )
    return (
        '<div class="rs-computed" style="margin-top:8px"><div style="font-weight:'
        f'bold">Features the transformer computed</div>{"".join(notes)}{table}</div>'
    )


def _first(values: Sequence[object]) -> object:
    return values[0] if values else None


def _feature_text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class ScoreBand:
    name: str
    label: str
    low: float | None
    high: float | None


def score_bands(base_score: float, pdo: float) -> list[ScoreBand]:
    """Five bands in steps of `pdo` around the base score: each step doubles the odds.

    This is the app's display convention (documented in docs/app.md), derived from the
    model's own scaling so a rescaled model gets rescaled bands.
    """
    edges = [base_score - 2 * pdo, base_score - pdo, base_score, base_score + 2 * pdo]
    return [
        ScoreBand("E", "very high risk", None, edges[0]),
        ScoreBand("D", "high risk", edges[0], edges[1]),
        ScoreBand("C", "medium risk", edges[1], edges[2]),
        ScoreBand("B", "low risk", edges[2], edges[3]),
        ScoreBand("A", "very low risk", edges[3], None),
    ]


def band_of(score: float, bands: Sequence[ScoreBand]) -> ScoreBand:
    for band in bands:
        if band.high is None or score < band.high:
            return band
    return bands[-1]


def credit_scaling(metadata: ModelMetadata) -> tuple[float, float, float]:
    return (
        metadata.parameter("base_score") or DEFAULT_BASE_SCORE,
        metadata.parameter("base_odds") or DEFAULT_BASE_ODDS,
        metadata.parameter("pdo") or DEFAULT_PDO,
    )


def credit_answer_html(result: InferenceResult, metadata: ModelMetadata) -> str:
    probability = float(result.outputs[DEFAULT_PROBABILITY][0])
    # A transformer's JSON answer carries an infinite score (a probability of 0 or
    # 1) as null: it is off the scale, at the end the probability says.
    sent = result.outputs[CREDIT_SCORE][0]
    score = float(sent) if sent is not None else math.nan
    approved = bool(result.outputs[APPROVED][0])
    base_score, base_odds, pdo = credit_scaling(metadata)
    bands = score_bands(base_score, pdo)
    if not math.isfinite(score):
        score = math.inf if probability < 0.5 else -math.inf
    band = band_of(score, bands)
    score_text = f"{score:.0f}" if math.isfinite(score) else "off the scale"
    cutoff = metadata.parameter("cutoff")
    # The lowest and highest scores drawn: three bands of width pdo beyond the edges.
    low, high = base_score - 5 * pdo, base_score + 5 * pdo
    position = (
        (score - low) / (high - low) if math.isfinite(score) else float(score > 0)
    )
    scale = "".join(
        f'<div title="{b.name}: {b.label}" style="flex:1;text-align:center;'
        f"padding:2px 0;background:{colour};color:white;font-size:0.8em"
        f'{";outline:2px solid #212121" if b is band else ""}">{b.name}</div>'
        for b, colour in zip(
            bands, (RED, AMBER, "#fbc02d", "#7cb342", GREEN), strict=True
        )
    )
    pointer = (
        f'<div style="position:relative;height:10px"><div style="position:absolute;'
        f"left:calc({max(0.0, min(1.0, position)) * 100:.1f}% - 6px);width:0;height:0;"
        "border-left:6px solid transparent;border-right:6px solid transparent;"
        'border-top:10px solid #212121"></div></div>'
    )
    band_range = " to ".join(
        f"{edge:g}" for edge in (band.low, band.high) if edge is not None
    )
    band_range = (
        f"below {band.high:g}"
        if band.low is None
        else f"{band.low:g} and above"
        if band.high is None
        else band_range
    )
    verdict = (
        f'<span style="color:{GREEN}">APPROVED</span>'
        if approved
        else f'<span style="color:{RED}">DECLINED</span>'
    )
    at = f" (cut-off {cutoff:g})" if cutoff is not None else ""
    return (
        '<div class="rs-answer rs-credit">'
        f'<div style="font-size:1.1em">Default probability <b class="rs-probability">'
        f"{probability:.4f}</b> ({probability:.2%})</div>"
        f"{probability_bar(probability, None, RED if not approved else GREEN)}"
        f'<div style="font-size:1.2em;margin-top:6px">Credit score <b class="rs-score">'
        f"{score_text}</b>, band <b>{band.name}</b> ({band.label}, {band_range})</div>"
        f'<div style="display:flex;gap:2px;margin-top:4px">{scale}</div>{pointer}'
        f'<div style="color:#555;font-size:0.85em">Scale: {base_score:g} points at '
        f"{base_odds:g}:1 odds of repaying; every {pdo:g} points double the odds.</div>"
        f'<div class="rs-decision" style="font-size:1.1em;margin-top:6px">'
        f"Decision: {verdict}{at}</div>"
        f"{reasons_html(result, approved)}{points_chart_html(result, metadata)}"
        f"{computed_features_html(result, 'credit', CREDIT.feature_names)}"
        f"{_served_by(result)}</div>"
    )


def reasons_html(result: InferenceResult, approved: bool) -> str:
    """The model's reason codes (`feature: reason`), worst first. Under a decline they
    are the reasons for it; an approved applicant's say what held the score down."""
    codes = [str(c) for c in (result.outputs.get(REASON_CODES) or [[]])[0] if c]
    if not codes:
        return ""
    title = "Reasons for the decline" if not approved else "What held the score down"
    items = "".join(
        f'<li class="rs-reason"><b>{escape(code.partition(": ")[0])}</b>: '
        f"{escape(code.partition(': ')[2])}</li>"
        for code in codes
    )
    return (
        f'<div class="rs-reasons" style="margin-top:6px"><div style="font-weight:bold;'
        f'color:{RED if not approved else "#555"}">{title}</div>'
        f'<ol style="margin:4px 0 0 18px;padding:0">{items}</ol></div>'
    )


def points_chart_html(result: InferenceResult, metadata: ModelMetadata) -> str:
    """A scorecard's points per feature (`feature_points`, columns named by the
    `reason_features` metadata) as horizontal bars, highest first."""
    points = (result.outputs.get("feature_points") or [None])[0]
    names = [n for n in metadata.parameters.get("reason_features", "").split(",") if n]
    if not points or len(names) != len(points):
        return ""
    pairs = sorted(
        zip(names, (float(p) for p in points), strict=True), key=lambda p: -p[1]
    )
    top = max((abs(p) for _, p in pairs), default=0.0) or 1.0
    rows = "".join(
        f'<div class="rs-points-row" style="display:flex;align-items:center;gap:6px;'
        f'font-size:0.8em"><div style="width:42%;text-align:right;overflow:hidden;'
        f'white-space:nowrap" title="{escape(name)}">{escape(name)}</div>'
        f'<div style="flex:1;background:#f3f3f3;height:12px;position:relative">'
        f'<div style="height:100%;width:{abs(value) / top * 100:.1f}%;'
        f'background:{GREEN if value >= 0 else RED}"></div></div>'
        f'<div class="rs-points-value" style="width:48px">{value:.1f}</div></div>'
        for name, value in pairs
    )
    return (
        '<div class="rs-points" style="margin-top:8px"><div style="font-weight:bold">'
        "Scorecard points per feature</div>"
        f'<div style="color:#555;font-size:0.8em">credit score = offset + the sum of '
        f"these points ({sum(p for _, p in pairs):.1f})</div>{rows}</div>"
    )


def histogram_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin; the last bin includes its upper edge, as numpy's histogram."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        if not math.isfinite(value) or value < edges[0] or value > edges[-1]:
            continue
        for i in range(len(counts)):
            if value < edges[i + 1] or i == len(counts) - 1:
                counts[i] += 1
                break
    return counts


def histogram_html(
    title: str, edges: Sequence[float], series: Mapping[str, Sequence[int]]
) -> str:
    """Side-by-side bars per bin, each series as shares of its own total."""
    if not series or len(edges) < 2:
        return note_html(f"{title}: no data yet.")
    totals = {name: sum(counts) for name, counts in series.items()}
    shares = {
        name: [c / totals[name] if totals[name] else 0.0 for c in counts]
        for name, counts in series.items()
    }
    top = max((max(s) for s in shares.values() if s), default=0.0) or 1.0
    colours = dict(zip(series, SERIES_COLOURS * 4, strict=False))
    columns = []
    for i in range(len(edges) - 1):
        bars = "".join(
            f'<div title="{escape(name)}: {series[name][i]} ({shares[name][i]:.1%})" '
            f'style="flex:1;align-self:flex-end;height:{shares[name][i] / top * 100:.1f}%;'
            f'background:{colours[name]};min-height:1px"></div>'
            for name in series
        )
        columns.append(
            '<div style="flex:1;display:flex;flex-direction:column">'
            f'<div style="height:120px;display:flex;gap:1px">{bars}</div>'
            f'<div style="font-size:0.7em;text-align:center;color:#555">'
            f"{edges[i]:g}–{edges[i + 1]:g}</div></div>"
        )
    legend = " ".join(
        f'<span style="color:{colours[name]}">■</span> {escape(name)} '
        f"({totals[name]} scored)"
        for name in series
    )
    return (
        f'<div class="rs-histogram"><div style="font-weight:bold">{escape(title)}</div>'
        f'<div style="display:flex;gap:4px;border-bottom:1px solid #999">'
        f'{"".join(columns)}</div><div style="font-size:0.85em">{legend}</div></div>'
    )

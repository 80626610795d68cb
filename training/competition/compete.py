"""The model competition: every candidate tuned, fitted, exported and checked the same
way; the winner is the best by the kind's primary metric, cross-validated on train +
validation with the same folds for every candidate (the folds every candidate
finished within its budget), then refitted on train + validation.

Why not the validation split: on real fraud data it holds about 60 positives, and one
split's ranking of candidates that are 0.05 PR-AUC apart is mostly noise (a GBM at CV
0.86 came out at 0.81 on validation, a logistic regression at CV 0.80 at 0.72). The
holdout is kept for the figures that are reported, never for choosing.

A candidate that fails (cannot be fitted, exported, or its graph does not reproduce it)
is named in one line and drops out; the others still compete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from riskserve.model.specs import ModelSpec
from riskserve.training import candidates
from riskserve.training.candidates.base import Candidate, CandidateError
from riskserve.training.competition.search import (
    Metric,
    SearchResult,
    has_search_space,
    tune,
)
from sklearn.metrics import average_precision_score, roc_auc_score

PRIMARY_METRIC: dict[str, tuple[str, Metric]] = {
    "fraud": ("pr_auc", average_precision_score),
    "credit": ("roc_auc", roc_auc_score),
}
PARITY_TOLERANCE = 1e-5
LATENCY_ROWS = 200  # single-row calls timed for the latency per row


class CompetitionError(RuntimeError):
    """Every candidate failed; the message names each with its reason."""


@dataclass
class Splits:
    train_x: pd.DataFrame
    train_y: pd.Series
    valid_x: pd.DataFrame
    valid_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series

    @property
    def fit_x(self) -> pd.DataFrame:
        """Train + validation: the rows every candidate is cross-validated and
        finally fitted on."""
        return pd.concat([self.train_x, self.valid_x])

    @property
    def fit_y(self) -> pd.Series:
        return pd.concat([self.train_y, self.valid_y])


@dataclass
class Entry:
    """One candidate's result. `error` is set when it dropped out."""

    name: str
    candidate: Candidate | None = None
    search: SearchResult | None = None
    fit_seconds: float = float("nan")
    onnx_latency_us: float = float("nan")
    cv_score: float = float("nan")  # mean over the folds every candidate finished
    cv_std: float = float("nan")  # their spread
    cv_folds: int = 0  # how many folds that is
    parity: float = float("nan")
    proto: onnx.ModelProto | None = None
    probability: str = ""
    column: int | None = None
    holdout_p: np.ndarray | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    # What every entry that did not drop out has; asked of one that did, a clear error.

    @property
    def searched(self) -> SearchResult:
        """The search's result (the entry got that far)."""
        if self.search is None:
            raise self._missing("search result")
        return self.search

    @property
    def fitted(self) -> Candidate:
        """The candidate refitted on train + validation."""
        if self.candidate is None:
            raise self._missing("fitted candidate")
        return self.candidate

    @property
    def graph(self) -> onnx.ModelProto:
        """The candidate's exported ONNX graph."""
        if self.proto is None:
            raise self._missing("ONNX graph")
        return self.proto

    def _missing(self, what: str) -> RuntimeError:
        why = f" (it dropped out: {self.error})" if self.error else ""
        return RuntimeError(f"candidate {self.name} has no {what}{why}")


def onnx_feeds(spec: ModelSpec, x: pd.DataFrame) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    for feature in spec.features:
        column = x[feature.name]
        if feature.kind == "categorical":
            feeds[feature.name] = column.astype(str).to_numpy(object).reshape(-1, 1)
        else:
            feeds[feature.name] = column.to_numpy(np.float32).reshape(-1, 1)
    return feeds


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def graph_probability(
    sess: ort.InferenceSession,
    name: str,
    column: int | None,
    feeds: dict[str, np.ndarray],
) -> np.ndarray:
    (out,) = sess.run([name], feeds)
    out = np.asarray(out)
    return out[:, column] if column is not None else out.reshape(-1)


def latency_per_row_us(
    sess: ort.InferenceSession, name: str, feeds: dict[str, np.ndarray]
) -> float:
    """Median time of one single-row call, in microseconds."""
    rows = next(iter(feeds.values())).shape[0]
    calls = [
        {k: v[i % rows : i % rows + 1] for k, v in feeds.items()}
        for i in range(LATENCY_ROWS)
    ]
    for call in calls[:20]:
        sess.run([name], call)
    times = []
    for call in calls:
        started = time.perf_counter()
        sess.run([name], call)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e6)


def run_candidate(
    kind: str,
    name: str,
    spec: ModelSpec,
    splits: Splits,
    budget_s: float,
    folds: int,
    seed: int,
    fixed: dict[str, Any],
    say: Callable[[str], None],
) -> Entry:
    """Tune by CV on train + validation, refit there, export, check parity."""
    _, metric = PRIMARY_METRIC[kind]
    entry = Entry(name)
    try:
        fit_x, fit_y = splits.fit_x, splits.fit_y
        search = entry.search = tune(
            lambda: candidates.create(kind, name, spec, seed),
            spec,
            fit_x,
            fit_y,
            metric,
            folds,
            budget_s,
            seed,
            lambda m: say(f"  {name} {m}"),
            fixed,
        )
        candidate = candidates.create(kind, name, spec, seed)
        started = time.monotonic()
        candidate.fit(fit_x, fit_y, None, None, search.params)
        entry.fit_seconds = time.monotonic() - started
        entry.candidate = candidate
        proto, entry.probability, entry.column = candidate.to_onnx()
        entry.proto = proto
        sess = session(proto)
        test_feeds = onnx_feeds(spec, splits.test_x)
        holdout_p = entry.holdout_p = graph_probability(
            sess, entry.probability, entry.column, test_feeds
        )
        native_p = np.asarray(candidate.predict_proba(splits.test_x), float)
        entry.parity = float(np.max(np.abs(holdout_p - native_p)))
        if not entry.parity <= PARITY_TOLERANCE:
            raise RuntimeError(
                f"its ONNX graph differs from the native model by {entry.parity:.2e} "
                f"(> {PARITY_TOLERANCE:.0e}) on the holdout, probabilities "
                f"{native_p.min():.1e} to {native_p.max():.1e}"
            )
        entry.onnx_latency_us = latency_per_row_us(sess, entry.probability, test_feeds)
    except Exception as exc:  # named in one line; the others still compete
        first = (str(exc).strip().splitlines() or [""])[0]
        named = first and not isinstance(exc, CandidateError)
        entry.error = f"{type(exc).__name__}: {first}" if named else first
        say(f"candidate {name} failed and is out of the competition: {entry.error}")
        return entry
    cv = search
    say(
        f"  {name}: best cv {PRIMARY_METRIC[kind][0]} {cv.cv_mean:.4f} +- "
        f"{cv.cv_std:.4f} on {len(cv.cv_scores)} folds ({cv.trials} trials, "
        f"{cv.pruned} pruned); refitted on {len(fit_y)} rows in "
        f"{entry.fit_seconds:.1f} s, ONNX {entry.onnx_latency_us:.0f} us/row, "
        f"parity {entry.parity:.1e}"
    )
    return entry


def rank_on_common_folds(entries: list[Entry]) -> int:
    """Sets every standing entry's `cv_score` to its mean over the first k folds,
    k being the folds every one of them finished; returns k."""
    standing = [e for e in entries if e.ok]
    common = min(len(e.searched.cv_scores) for e in standing)
    for e in standing:
        e.cv_folds = common
        e.cv_score = float(np.mean(e.searched.cv_scores[:common]))
        e.cv_std = float(np.std(e.searched.cv_scores[:common]))
    return common


def _tunable(kind: str, name: str, spec: ModelSpec, seed: int, rows: int) -> bool:
    try:
        return has_search_space(candidates.create(kind, name, spec, seed), rows)
    except Exception:  # it fails again, and is named, when its turn comes
        return True


def compete(
    kind: str,
    names: list[str],
    spec: ModelSpec,
    splits: Splits,
    budget_s: float,
    folds: int,
    seed: int,
    fixed: dict[str, dict[str, Any]],
    say: Callable[[str], None],
) -> tuple[Entry, list[Entry]]:
    """(winner, every entry). The budget is shared evenly by the candidates still to
    run: what one leaves unspent (a candidate with nothing to tune cross-validates
    its defaults once and stops) goes to those after it."""
    rows = len(splits.train_y) + len(splits.valid_y)
    tunable = {name for name in names if _tunable(kind, name, spec, seed, rows)}
    entries: list[Entry] = []
    spent = 0.0
    for i, name in enumerate(names, start=1):
        # An even share of what is left, never below half the first even share:
        # a candidate that overran (a fold takes what it takes) does not starve
        # the ones after it.
        share = max(
            (budget_s - spent) / (len(names) - i + 1), budget_s / len(names) / 2
        )
        budget_text = (
            f"search budget {share:.0f} s"
            if name in tunable
            else f"no search: its defaults cross-validated within {share:.0f} s"
        )
        say(f"candidate {i}/{len(names)}: {name} ({budget_text})")
        entry = run_candidate(
            kind, name, spec, splits, share, folds, seed, fixed.get(name, {}), say
        )
        entries.append(entry)
        spent += entry.search.seconds if entry.search else share
    standing = [e for e in entries if e.ok]
    if not standing:
        reasons = "; ".join(f"{e.name}: {e.error}" for e in entries)
        raise CompetitionError(f"every candidate failed ({reasons})")
    common = rank_on_common_folds(entries)
    winner = max(standing, key=lambda e: e.cv_score)
    say(
        f"ranked on the {common} CV fold{'s' if common > 1 else ''} every candidate "
        f"finished: "
        + ", ".join(
            f"{e.name} {e.cv_score:.4f}"
            for e in sorted(standing, key=lambda e: -e.cv_score)
        )
    )
    return winner, entries


def comparison_table(
    kind: str, entries: list[Entry], winner: Entry, test_y: pd.Series
) -> pd.DataFrame:
    metric_name, metric = PRIMARY_METRIC[kind]
    rows = []
    for e in entries:
        row = {
            "candidate": e.name,
            "status": "winner" if e is winner else ("ok" if e.ok else "failed"),
            f"cv_{metric_name}": e.cv_score,
            "cv_folds": e.cv_folds,
            f"cv_{metric_name}_std": e.cv_std,
            "trials": e.search.trials if e.search else 0,
            f"holdout_{metric_name}": (
                float(metric(test_y.to_numpy(), e.holdout_p))
                if e.holdout_p is not None
                else float("nan")
            ),
            "fit_seconds": e.fit_seconds,
            "onnx_us_per_row": e.onnx_latency_us,
            "parity": e.parity,
            "error": e.error or "",
        }
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["error"])
    formats: dict[str | int, Callable[[float], str]] = {
        column: (lambda v: f"{v:.1e}") if column == "parity" else (lambda v: f"{v:.4f}")
        for column in shown.columns
        if shown[column].dtype.kind == "f"
    }
    formats["fit_seconds"] = formats["onnx_us_per_row"] = lambda v: f"{v:.1f}"
    return shown.to_string(index=False, formatters=formats)


def lift_curve(
    entries: list[Entry], test_y: pd.Series, out_dir: Path, title: str
) -> Path:
    """Cumulative lift on the holdout: the positive rate among the top q of rows by
    score, over the overall rate, for every candidate that finished."""
    from riskserve.training.evaluation import _save as save_figure
    from riskserve.training.evaluation import plt

    y = test_y.to_numpy()
    base = max(float(y.mean()), 1e-12)
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in entries:
        if e.holdout_p is None:
            continue
        order = np.argsort(-e.holdout_p, kind="stable")
        caught = np.cumsum(y[order])
        share = np.arange(1, len(y) + 1) / len(y)
        ax.plot(share, caught / np.arange(1, len(y) + 1) / base, label=e.name)
    ax.axhline(1.0, color="grey", linestyle="--", label="random")
    ax.set(
        xscale="log",
        xlabel="share of holdout rows, highest score first",
        ylabel="lift (positive rate / overall rate)",
        title=f"{title}: cumulative lift on the holdout",
    )
    ax.legend()
    return save_figure(fig, out_dir / "lift_curve.png")


def calibration_plot(
    y: np.ndarray, before: np.ndarray, after: np.ndarray, out_dir: Path, title: str
) -> Path:
    from riskserve.training.evaluation import _save as save_figure
    from riskserve.training.evaluation import plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(5, 4))
    top = 0.0
    for label, p in (("before", before), ("after (calibrator out of fold)", after)):
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, "o-", label=label)
        top = max(top, predicted.max(), observed.max())
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.set(
        xlabel="predicted probability",
        ylabel="observed rate",
        title=f"{title}: calibration, out-of-fold CV predictions",
    )
    ax.legend()
    return save_figure(fig, out_dir / "winner_calibration.png")

"""Late labels: outcomes joined to the inference log, and the realised performance of
each version per week (of the prediction), against the version's holdout metrics.

fraud: PR-AUC, ROC-AUC, and precision and recall of the decision the predictor served
(`is_fraud`, so at the served threshold). credit: the observed default rate per score
band against the band's expected rate (its mean predicted probability), and ROC-AUC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.reference_profile import ReferenceProfile
from riskserve.model.specs import (
    CREDIT_SCORE,
    DEFAULT_PROBABILITY,
    FRAUD_PROBABILITY,
    IS_FRAUD,
)
from riskserve.monitoring.fairness_live import (
    ProtectedColumn,
    attach,
    check_not_an_input,
    live_fairness,
    summary_lines,
)
from riskserve.monitoring.log_reader import BadInput, LogData

# Fewer positives (or negatives) than this in a group: metrics shown, never judged.
MIN_CLASS_ROWS = 10


@dataclass
class LabelResult:
    model: str
    labels: int
    matched: int
    unknown_keys: int
    duplicates: int
    per_version: list[dict] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    fairness: list[dict] = field(default_factory=list)
    """Per version, with a protected attribute: its groups (fairness_live)."""
    adverse_impact: list[str] = field(default_factory=list)
    """Groups whose adverse impact ratio is under 0.8 with enough decisions."""

    def summary(self) -> dict:
        return {
            "model": self.model,
            "labels": self.labels,
            "matched": self.matched,
            "unknown_keys": self.unknown_keys,
            "duplicate_keys": self.duplicates,
            "versions": self.per_version,
            "degraded": self.degraded,
            "fairness": self.fairness,
            "adverse_impact": self.adverse_impact,
        }


def fetch_labels(uri: str, settings, folder: Path) -> Path:
    """A local copy of an `s3://` labels file (the cluster's CronJob reads them there)."""
    if not str(uri).startswith("s3://"):
        return Path(uri)
    bucket, _, key = str(uri).removeprefix("s3://").partition("/")
    local = folder / Path(key).name
    try:
        settings.s3_client().download_file(bucket, key, str(local))
    except Exception as exc:  # botocore's errors: name the file, not a trace
        raise BadInput(f"cannot read the labels at {uri}: {exc}") from None
    return local


def read_labels(path: Path, key: str, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """Key, label (0/1) and time columns of a CSV or Parquet file, and the columns of
    `keep` it has (a protected attribute)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such labels file")
    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix.lower() in {".parquet", ".pq"}
            else pd.read_csv(path)
        )
    except Exception as exc:  # pandas and pyarrow raise many kinds: say which file
        raise BadInput(f"{path}: not a readable labels file ({exc})") from None
    for column in (key, "label"):
        if column not in frame.columns:
            raise BadInput(
                f"{path}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})"
            )
    label = pd.to_numeric(frame["label"], errors="coerce")
    if label.isna().any() or not set(label.unique()) <= {0, 1}:
        bad = frame["label"][label.isna() | ~label.isin([0, 1])].iloc[0]
        raise BadInput(f"{path}: label must be 0 or 1, found {bad!r}")
    out = pd.DataFrame({"key": frame[key].astype(str), "label": label.astype(int)})
    if "time" in frame.columns:
        out["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce")
    for column in keep:
        if column in frame.columns and column not in out.columns:
            out[column] = frame[column]
    return out


def realised(
    data: LogData,
    labels: pd.DataFrame,
    key: str,
    reference_of: Callable[[str], ReferenceProfile],
    metric_drop: float,
    fairness: ProtectedColumn | None = None,
    proxy: pd.DataFrame | None = None,
) -> LabelResult:
    """Per version: realised metrics, and with `fairness` the groups of a protected
    attribute (from the labels, or the `proxy` frame of fairness_live.read_proxy)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if fairness is not None:
        check_not_an_input(fairness, set(data.inputs))

    if key == "request_id":
        keys = data.row_keys.astype(str)
    elif key in data.inputs:
        keys = pd.Series(data.inputs[key]).astype(str).to_numpy()
    else:
        raise BadInput(
            f"the log has no input {key!r} to join on; use request_id or one of "
            f"{', '.join(sorted(data.inputs)) or 'no inputs'}"
        )
    log = pd.DataFrame(
        {
            "key": keys,
            "version": data.versions.astype(str),
            "served_at": data.timestamps,
        }
    )
    for name, values in data.outputs.items():
        log[name] = values
    duplicates = int(labels["key"].duplicated().sum())
    labels = labels.drop_duplicates("key", keep="last")
    joined = labels.merge(log.drop_duplicates("key", keep="last"), on="key")
    result = LabelResult(
        data.model, len(labels), len(joined), len(labels) - len(joined), duplicates
    )
    if joined.empty:
        return result
    week = pd.to_datetime(joined["served_at"], unit="s", utc=True).dt.strftime("%G-W%V")
    joined["week"] = week
    if fairness is not None:
        joined = attach(
            joined,
            fairness,
            key,
            proxy,
            data.inputs,
            pd.Series(keys),
        )
        result.fairness, result.adverse_impact = live_fairness(joined, fairness)
    fraud = FRAUD_PROBABILITY in joined
    score = FRAUD_PROBABILITY if fraud else DEFAULT_PROBABILITY
    if score not in joined:
        raise BadInput(f"the log of {data.model} has no {score} output to judge")

    def metrics(group: pd.DataFrame, profile: ReferenceProfile) -> dict:
        y, p = group["label"].to_numpy(), group[score].to_numpy(np.float64)
        out: dict = {"rows": len(group), "positives": int(y.sum())}
        enough = min(y.sum(), len(y) - y.sum()) >= MIN_CLASS_ROWS
        out["judged"] = bool(enough)
        if y.min() != y.max():
            out["pr_auc"] = float(average_precision_score(y, p))
            out["roc_auc"] = float(roc_auc_score(y, p))
        if fraud and IS_FRAUD in group:
            decided = group[IS_FRAUD].to_numpy(np.float64) > 0.5
            tp = int((decided & (y == 1)).sum())
            out["precision"] = tp / decided.sum() if decided.sum() else None
            out["recall"] = tp / y.sum() if y.sum() else None
            out["threshold"] = profile.decision.get("threshold")
        if not fraud and CREDIT_SCORE in group:
            out["bands"] = _bands(group, profile)
        return out

    for version, group in joined.groupby("version"):
        profile = reference_of(str(version))
        overall = metrics(group, profile)
        entry = {
            "version": str(version),
            **overall,
            "holdout": {
                k: profile.metrics[k]
                for k in ("pr_auc", "roc_auc")
                if k in profile.metrics
            },
            "weeks": [
                {"week": w, **metrics(g, profile)} for w, g in group.groupby("week")
            ],
        }
        drops = []
        if overall["judged"]:
            for name in ("pr_auc", "roc_auc"):
                if name in overall and name in profile.metrics:
                    drop = profile.metrics[name] - overall[name]
                    if drop >= metric_drop:
                        drops.append(
                            f"{name} {overall[name]:.4f} vs {profile.metrics[name]:.4f} "
                            f"on the holdout"
                        )
        entry["degraded"] = drops
        if drops:
            result.degraded.append(f"v{version}: " + "; ".join(drops))
        result.per_version.append(entry)
    return result


def _bands(group: pd.DataFrame, profile: ReferenceProfile) -> list[dict]:
    scores = group[CREDIT_SCORE].to_numpy(np.float64)
    reference = profile.outputs.get(CREDIT_SCORE)
    edges = (
        np.asarray(reference.edges)
        if reference is not None and reference.edges
        else np.quantile(scores, np.linspace(0, 1, 11)[1:-1])
    )
    band = np.searchsorted(edges, scores.astype(np.float32), side="left")
    rows = []
    for b in range(len(edges) + 1):
        inside = band == b
        if not inside.any():
            continue
        low = f"{edges[b - 1]:.0f}" if b else "-inf"
        high = f"{edges[b]:.0f}" if b < len(edges) else "inf"
        rows.append(
            {
                "band": f"({low}, {high}]",
                "rows": int(inside.sum()),
                "observed_default_rate": float(
                    group["label"].to_numpy()[inside].mean()
                ),
                "expected_default_rate": float(
                    group[DEFAULT_PROBABILITY].to_numpy(np.float64)[inside].mean()
                ),
            }
        )
    return rows


def labels_summary(result: LabelResult) -> str:
    lines = [
        f"{result.model}: {result.labels} labels, {result.matched} joined to the log, "
        f"{result.unknown_keys} with unknown keys"
        + (
            f", {result.duplicates} duplicate keys (last kept)"
            if result.duplicates
            else ""
        )
    ]
    for v in result.per_version:
        head = f"  v{v['version']}: {v['rows']} rows, {v['positives']} positives"
        for name in ("pr_auc", "roc_auc", "precision", "recall"):
            if v.get(name) is not None:
                head += f", {name} {v[name]:.4f}"
        if v["holdout"]:
            head += (
                " (holdout "
                + ", ".join(f"{k} {x:.4f}" for k, x in v["holdout"].items())
                + ")"
            )
        lines.append(head)
        for w in v["weeks"]:
            text = ", ".join(
                f"{k} {w[k]:.4f}"
                for k in ("pr_auc", "roc_auc", "precision", "recall")
                if w.get(k) is not None
            )
            lines.append(
                f"    {w['week']}: {w['rows']} rows{', ' + text if text else ''}"
            )
        for band in v.get("bands", []):
            lines.append(
                f"    band {band['band']}: {band['rows']} rows, observed "
                f"{band['observed_default_rate']:.2%} vs expected "
                f"{band['expected_default_rate']:.2%}"
            )
    lines.extend(summary_lines(result.fairness))
    if result.fairness:
        lines.append(
            "ADVERSE IMPACT: " + " | ".join(result.adverse_impact)
            if result.adverse_impact
            else "no adverse impact ratio below 0.8"
        )
    lines.append(
        "DEGRADED: " + " | ".join(result.degraded)
        if result.degraded
        else "no degradation"
    )
    return "\n".join(lines)

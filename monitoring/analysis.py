"""One monitoring pass: the window's rows of each served version against that version's
reference profile, per feature and per score, plus volume per hour."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from riskserve.model.reference_profile import ReferenceProfile
from riskserve.model.specs import PROBABILITY_OUTPUT
from riskserve.monitoring.drift import ColumnDrift, Thresholds, compare, hourly_psi
from riskserve.monitoring.log_reader import LogData, LogWindow, named_inputs


@dataclass
class VersionAnalysis:
    version: str
    rows: int
    reference: str
    judged: bool
    features: list[ColumnDrift] = field(default_factory=list)
    outputs: list[ColumnDrift] = field(default_factory=list)
    score_over_time: list[tuple[float, float, int]] = field(default_factory=list)
    score_name: str | None = None
    missing_features: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        if not self.judged:
            return []
        return [c.name for c in (*self.features, *self.outputs) if c.drifted]

    def summary(self) -> dict:
        return {
            "version": self.version,
            "rows": self.rows,
            "reference": self.reference,
            "judged": self.judged,
            "features": [c.summary() for c in self.features],
            "outputs": [c.summary() for c in self.outputs],
            "drifted": self.drifted,
            "missing_features": self.missing_features,
            "score_psi_per_hour": [
                {"hour": _iso(h), "psi": round(p, 6), "rows": n}
                for h, p, n in self.score_over_time
            ],
        }


@dataclass
class Analysis:
    model: str
    log: str
    window: LogWindow
    rows: int
    files: int
    records: int
    corrupt_count: int
    corrupt: list[str]
    volume_per_hour: list[tuple[float, int]]
    versions: list[VersionAnalysis]
    thresholds: Thresholds

    @property
    def primary(self) -> VersionAnalysis | None:
        """The version that served the most rows of the window."""
        return max(self.versions, key=lambda v: v.rows, default=None)

    @property
    def drifted(self) -> list[str]:
        names: list[str] = []
        for version in self.versions:
            names += [n for n in version.drifted if n not in names]
        return names

    @property
    def status(self) -> str:
        if self.rows == 0:
            return "no traffic"
        return "drift" if self.drifted else "ok"

    def summary(self) -> dict:
        primary = self.primary
        return {
            "model": self.model,
            "log": self.log,
            "window": self.window.as_dict(),
            "status": self.status,
            "rows": self.rows,
            "files": self.files,
            "records": self.records,
            "corrupt_lines": self.corrupt_count,
            "corrupt_examples": self.corrupt,
            "primary_version": primary.version if primary else None,
            # One entry per feature, of the version that served most of the window;
            # every version's own entries are under `versions`.
            "features": [c.summary() for c in primary.features] if primary else [],
            "outputs": [c.summary() for c in primary.outputs] if primary else [],
            "drifted": self.drifted,
            "versions": [v.summary() for v in self.versions],
            "volume_per_hour": [
                {"hour": _iso(h), "rows": n} for h, n in self.volume_per_hour
            ],
            "thresholds": {
                "psi": self.thresholds.psi,
                "p_value": self.thresholds.p_value,
                "missing_rate": self.thresholds.missing_rate,
            },
        }


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="minutes")


def analyse(
    data: LogData,
    window: LogWindow,
    log_where: str,
    reference_of: Callable[[str], ReferenceProfile],
    thresholds: Thresholds,
    min_rows: int,
    progress: Callable[[str], None] = lambda _: None,
) -> Analysis:
    hours = np.floor(data.timestamps / 3600.0) * 3600.0
    volume = []
    if data.rows:
        uniq, counts = np.unique(hours, return_counts=True)
        volume = [(float(h), int(c)) for h, c in zip(uniq, counts, strict=True)]
    analysis = Analysis(
        data.model,
        log_where,
        window,
        data.rows,
        data.files,
        data.records,
        data.corrupt_count,
        data.corrupt,
        volume,
        [],
        thresholds,
    )
    if not data.rows:
        return analysis
    versions, counts = np.unique(data.versions.astype(str), return_counts=True)
    for version, count in sorted(
        zip(versions, counts, strict=True), key=lambda vc: -vc[1]
    ):
        profile = reference_of(str(version))
        progress(f"version {version}: {count} rows against {profile.source}")
        mask = data.versions == version
        analysis.versions.append(
            _analyse_version(
                str(version),
                profile,
                {k: v[mask] for k, v in data.inputs.items()},
                {k: v[mask] for k, v in data.outputs.items()},
                hours[mask],
                thresholds,
                min_rows,
            )
        )
    return analysis


def _analyse_version(
    version, profile: ReferenceProfile, inputs, outputs, hours, thresholds, min_rows
) -> VersionAnalysis:
    rows = len(hours)
    inputs = named_inputs(inputs, list(profile.features))
    result = VersionAnalysis(version, rows, profile.source, rows >= min_rows)
    for name, reference in profile.features.items():
        if name not in inputs:
            result.missing_features.append(name)
            continue
        result.features.append(
            compare(name, "feature", reference, inputs[name], thresholds)
        )
    for name, reference in profile.outputs.items():
        if name in outputs:
            result.outputs.append(
                compare(name, "output", reference, outputs[name], thresholds)
            )
    score = next((n for n in PROBABILITY_OUTPUT.values() if n in outputs), None)
    if score and score in profile.outputs:
        result.score_name = score
        result.score_over_time = hourly_psi(
            profile.outputs[score], outputs[score], hours
        )
    return result

"""`riskserve report`: build a version's validation report, log it with the version,
and record its hash (the version becomes validated)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from riskserve.governance import registered_version
from riskserve.governance.approvals import record_report
from riskserve.governance.live_traffic import LiveLogRequest, read_live
from riskserve.governance.report import ReportInputs, build
from riskserve.governance.scoring import graph_spec, score
from riskserve.model.data import DataError, binary_target, read_csv
from riskserve.model.fairness import FairnessResult, fairness_table, groups_of

if TYPE_CHECKING:
    from mlflow import MlflowClient

REPORT_FOLDER = "validation"  # under the version's run


@dataclass(frozen=True)
class FairnessRequest:
    data: Path
    protected: str
    edges: list[float] | None = None  # numeric attribute: band edges (e.g. age)
    protected_file: Path | None = None  # a proxy file with the attribute, by id
    id_column: str | None = None


@dataclass(frozen=True)
class ReportResult:
    name: str
    version: str
    path: Path
    sha256: str
    artifact: str
    status: str
    fairness: FairnessResult | None


def fairness_rows(request: FairnessRequest) -> pd.DataFrame:
    """The evaluation rows with the protected column, joined from the proxy file
    when one is given. DataError names what is missing."""
    frame = read_csv(request.data)
    if request.protected_file is not None:
        if not request.id_column:
            raise DataError("--protected-file needs --id COL to join the rows by")
        proxy = read_csv(request.protected_file)
        for source, table in ((request.data, frame), (request.protected_file, proxy)):
            if request.id_column not in table.columns:
                raise DataError(f"{source}: no id column {request.id_column!r}")
        if request.protected not in proxy.columns:
            raise DataError(
                f"{request.protected_file}: no protected column {request.protected!r}"
            )
        if proxy[request.id_column].duplicated().any():
            raise DataError(
                f"{request.protected_file}: id column {request.id_column!r} repeats "
                "an id"
            )
        frame = frame.drop(columns=[request.protected], errors="ignore").merge(
            proxy[[request.id_column, request.protected]],
            on=request.id_column,
            how="left",
            validate="many_to_one",
        )
    if request.protected not in frame.columns:
        raise DataError(f"{request.data}: no protected column {request.protected!r}")
    return frame


def fairness_of(
    version: registered_version.RegisteredVersion, request: FairnessRequest
) -> tuple[FairnessResult, np.ndarray]:
    if request.protected in version.feature_names:
        raise DataError(
            f"{request.protected!r} is an input of {version.name} v{version.version}: "
            "a protected attribute must never be a model input"
        )
    frame = fairness_rows(request)
    spec = graph_spec(version.model_path, version.name)
    outputs = score(version.model_path, spec, frame, str(request.data))
    credit = version.kind == "credit"
    probability = np.asarray(
        outputs["default_probability" if credit else "fraud_probability"], np.float64
    )
    favourable = (
        np.asarray(outputs["approved"], bool)
        if credit
        else ~np.asarray(outputs["is_fraud"], bool)
    )
    target = version.params.get("target", "")
    labels = None
    # A version trained before its event value was recorded cannot say which value is
    # the default: no labels rather than labels that may be inverted.
    if target and target in frame.columns and "positive" in version.params:
        labels = binary_target(
            frame,
            target,
            str(request.data),
            version.params.get("positive") or None,
        ).to_numpy()
    groups = groups_of(frame[request.protected], request.edges)
    result = fairness_table(request.protected, groups, favourable, probability, labels)
    return result, probability


def generate(
    client: MlflowClient,
    reference: str,
    out: Path | None,
    owner: str | None,
    by: str,
    fairness: FairnessRequest | None = None,
    live_log: LiveLogRequest | None = None,
) -> ReportResult:
    name, wanted = registered_version.parse_reference(reference)
    version = registered_version.resolve(client, name, wanted)
    live = (
        read_live(live_log.root, live_log.served_as or name, version)
        if live_log is not None
        else None
    )
    with tempfile.TemporaryDirectory(prefix="riskserve-report-") as tmp:
        loaded = registered_version.load(client, name, version, Path(tmp))
        result, scores = (
            fairness_of(loaded, fairness) if fairness is not None else (None, None)
        )
        html = build(
            ReportInputs(
                version=loaded,
                owner=owner or loaded.registered_tags.get("owner", ""),
                fairness=result,
                fairness_source=str(fairness.data) if fairness else "",
                data_scores=scores,
                live=live,
            )
        )
        body = html.encode("utf-8")
        sha256 = hashlib.sha256(body).hexdigest()
        path = out or Path(f"{name}-v{version}-validation.html")
        path.write_bytes(body)
        logged = Path(tmp) / f"report-{sha256[:12]}.html"
        logged.write_bytes(body)
        client.log_artifact(loaded.run_id, str(logged), REPORT_FOLDER)
    artifact = f"{REPORT_FOLDER}/{logged.name}"
    status = record_report(client, name, version, sha256, artifact, by)
    return ReportResult(name, version, path, sha256, artifact, status, result)

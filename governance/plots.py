"""The report's plots, as PNG bytes to inline (a PNG carries no markup, so nothing
from the data can reach the browser through a plot)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; there is no screen where reports are built

import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from riskserve.governance.metrics import FloatArray


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def roc_plot(fpr: FloatArray, tpr: FloatArray, auc: float) -> bytes:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot(fpr, tpr, label=f"ROC-AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    return _png(fig)


def pr_plot(recall: FloatArray, precision: FloatArray, ap: float, base: float) -> bytes:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot(recall, precision, label=f"average precision {ap:.3f}")
    ax.axhline(base, linestyle="--", color="grey", label=f"event rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    ax.legend(loc="upper right")
    return _png(fig)


def reliability_plot(predicted: list[float], observed: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    top = max([*predicted, *observed, 0.01])
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.plot(predicted, observed, "o-", label="model (deciles)")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed rate",
        title="reliability",
    )
    ax.legend(loc="upper left")
    return _png(fig)


def air_plot(groups: list[str], air: list[float], threshold: float) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.35 * len(groups)))
    # Group names come from the data: matplotlib draws them as pixels in a PNG.
    names = [g if len(g) <= 40 else g[:39] + "..." for g in groups]
    colors = ["#c0392b" if a < threshold else "#2e86c1" for a in air]
    ax.barh(range(len(names)), air, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.axvline(threshold, color="black", linestyle="--", label=f"{threshold:g}")
    ax.invert_yaxis()
    ax.set(xlabel="adverse impact ratio", xlim=(0, max([1.05, *air])))
    ax.legend(loc="lower right")
    return _png(fig)

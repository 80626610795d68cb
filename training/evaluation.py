"""Evaluating a classifier on held-out data: metrics, the decision threshold, plots,
and the score-band table of the credit-default predictor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; there is no screen on a training pod

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Evaluation:
    """What a job reports on the holdout, and logs with its run."""

    metrics: dict[str, float]
    plots: list[Path]
    tables: dict[str, pd.DataFrame]
    holdout_feeds: dict[str, np.ndarray]
    work_dir: Path
    documents: list[Path] = field(default_factory=list)  # logged under evaluation/

    def add(
        self,
        *,
        metrics: dict[str, float] | None = None,
        plots: tuple[Path, ...] = (),
        tables: dict[str, pd.DataFrame] | None = None,
        documents: tuple[Path, ...] = (),
    ) -> None:
        """Figures of later stages (scorecard, comparison, parity) beside the
        holdout's, in the order the run logs them."""
        self.metrics |= metrics or {}
        self.plots += plots
        self.tables |= tables or {}
        self.documents += documents


def choose_threshold(
    y_true: np.ndarray, probability: np.ndarray, target_precision: float | None = None
) -> float:
    """The threshold that maximises F1, or the lowest one reaching a target precision."""
    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    precision, recall = precision[:-1], recall[:-1]  # align with thresholds
    if target_precision is not None:
        reaching = np.flatnonzero(precision >= target_precision)
        if reaching.size == 0:
            raise ValueError(
                f"no threshold reaches precision {target_precision:.3f} on the validation "
                f"data (best {precision.max():.3f})"
            )
        return float(thresholds[reaching[0]])
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall), 0
    )
    return float(thresholds[int(np.argmax(f1))])


def classification_metrics(
    y_true: np.ndarray, probability: np.ndarray, decision: np.ndarray
) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y_true, probability)),
        "pr_auc": float(average_precision_score(y_true, probability)),
        "precision": float(precision_score(y_true, decision, zero_division=0)),
        "recall": float(recall_score(y_true, decision, zero_division=0)),
        "f1": float(f1_score(y_true, decision, zero_division=0)),
        "brier": float(brier_score_loss(y_true, probability)),
        "positive_rate": float(np.mean(y_true)),
    }


def ks_statistic(y_true: np.ndarray, probability: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the two classes' score CDFs."""
    fpr, tpr, _ = roc_curve(y_true, probability)
    return float(np.max(tpr - fpr))


def score_bands(
    y_true: np.ndarray, scores: np.ndarray, bands: int = 10
) -> pd.DataFrame:
    """Equal-size score bands, riskiest (lowest score) first, as the credit-default
    predictor reports them: band, size, defaults, band precision, cumulative precision
    and cumulative recall of defaults."""
    order = np.argsort(scores, kind="stable")
    y_sorted = np.asarray(y_true)[order]
    s_sorted = np.asarray(scores)[order]
    chunks = np.array_split(np.arange(len(order)), bands)
    rows, seen, caught = [], 0, 0
    total_defaults = max(int(y_sorted.sum()), 1)
    for chunk in chunks:
        if chunk.size == 0:
            continue
        defaults = int(y_sorted[chunk].sum())
        seen += chunk.size
        caught += defaults
        rows.append(
            {
                "band": f"{s_sorted[chunk[0]]:.0f}-{s_sorted[chunk[-1]]:.0f}",
                "size": int(chunk.size),
                "defaults": defaults,
                "band_precision": defaults / chunk.size,
                "cumulative_precision": caught / seen,
                "cumulative_recall": caught / total_defaults,
            }
        )
    return pd.DataFrame(rows)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def standard_plots(
    y_true: np.ndarray,
    probability: np.ndarray,
    decision: np.ndarray,
    out_dir: Path,
    title: str,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fpr, tpr, _ = roc_curve(y_true, probability)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, probability):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC"
    )
    ax.legend(loc="lower right")
    paths.append(_save(fig, out_dir / "roc_curve.png"))

    precision, recall, _ = precision_recall_curve(y_true, probability)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(
        recall,
        precision,
        label=f"AP {average_precision_score(y_true, probability):.3f}",
    )
    ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    ax.legend(loc="lower left")
    paths.append(_save(fig, out_dir / "pr_curve.png"))

    matrix = confusion_matrix(y_true, decision, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xlabel="predicted",
        ylabel="actual",
        title=f"{title}: confusion matrix",
    )
    paths.append(_save(fig, out_dir / "confusion_matrix.png"))
    return paths


def credit_plots(
    y_true: np.ndarray,
    probability: np.ndarray,
    scores: np.ndarray,
    cutoff: float,
    out_dir: Path,
) -> list[Path]:
    paths = []
    observed, predicted = calibration_curve(
        y_true, probability, n_bins=10, strategy="quantile"
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(predicted, observed, "o-", label="model")
    top = max(predicted.max(), observed.max())
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.set(
        xlabel="predicted default probability",
        ylabel="observed default rate",
        title="credit: calibration",
    )
    ax.legend()
    paths.append(_save(fig, out_dir / "calibration_curve.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    # A list: matplotlib's stubs type `bins` as a Sequence, which an array is not.
    bins = np.linspace(scores.min(), scores.max(), 40).tolist()
    ax.hist(scores[y_true == 0], bins=bins, alpha=0.6, density=True, label="repaid")
    ax.hist(scores[y_true == 1], bins=bins, alpha=0.6, density=True, label="defaulted")
    ax.axvline(cutoff, color="black", linestyle="--", label=f"cut-off {cutoff:.0f}")
    ax.set(xlabel="credit score", ylabel="density", title="credit: score distribution")
    ax.legend()
    paths.append(_save(fig, out_dir / "score_distribution.png"))
    return paths

"""`python -m riskserve.training fraud|credit` (also `riskserve train fraud|credit`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskserve.model.data import DataError
from riskserve.training.cutoff_policy import DEFAULT_POLICY, SCORE, parse_policy
from riskserve.training.progress import fail

DEMO_ROWS = {"fraud": 200_000, "credit": 90_000}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskserve train",
        description="Train a risk model, export it to ONNX and register it in MLflow.",
    )
    parser.add_argument(
        "kind", choices=["fraud", "credit"], help="which model to train"
    )
    parser.add_argument(
        "--data", type=Path, help="training CSV (default: synthetic data)"
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="DIR",
        help="train on a raw event log (fraud: cards.parquet, card_transactions.parquet; "
        "credit: bnpl_checkouts.parquet, bnpl_payments.parquet; python -m "
        "riskserve.features generate DIR writes both), its features joined "
        "point-in-time by the feature layer",
    )
    parser.add_argument(
        "--target",
        help="target column of --data; when given, the feature spec is inferred from the "
        "CSV (any schema) instead of the built-in one",
    )
    parser.add_argument(
        "--positive",
        help="with --target: the target's value that is the event (fraud, default), "
        "e.g. bad or yes (default: 1 or true, else the larger of the two values)",
    )
    parser.add_argument(
        "--rows", type=int, help="rows of synthetic data when no --data"
    )
    parser.add_argument(
        "--experiment", help="MLflow experiment (default: the model name)"
    )
    parser.add_argument(
        "--model-name", help="registered model name (default: the kind)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=10, help="fraud: maximum epochs")
    parser.add_argument(
        "--promote-if-better",
        action="store_true",
        help="compete for champion: the new version must beat the champion's PR-AUC "
        "on the same holdout, and a draft stays challenger until approved "
        "(RISKSERVE_ROLLOUT_ALLOW_UNAPPROVED=true skips that in development)",
    )
    parser.add_argument(
        "--target-precision",
        type=float,
        help="fraud: lowest threshold reaching this precision (default: maximise F1)",
    )
    parser.add_argument(
        "--cutoff-policy",
        metavar="POLICY",
        help="credit: how the cut-off score is chosen from the data: profit:GAIN:LOSS "
        "(maximise expected profit per applicant), approval-rate:R, bad-rate:B (the "
        "largest approval rate whose expected bad rate is at most B) or score:S "
        f"(default {DEFAULT_POLICY}: a bad approved costs 5 times a good declined)",
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        metavar="S",
        help="credit: approve at or above this score; short for --cutoff-policy score:S",
    )
    parser.add_argument("--base-score", type=float, default=600.0)
    parser.add_argument("--base-odds", type=float, default=50.0)
    parser.add_argument(
        "--pdo", type=float, default=20.0, help="points to double the odds"
    )
    parser.add_argument(
        "--categorical",
        nargs="*",
        default=[],
        help="with --target: treat these columns as categorical",
    )
    parser.add_argument(
        "--numeric",
        nargs="*",
        default=[],
        help="with --target: treat these columns as numeric",
    )
    parser.add_argument(
        "--drop", nargs="*", default=[], help="with --target: leave these columns out"
    )
    parser.add_argument(
        "--protected",
        nargs="*",
        default=[],
        metavar="COL",
        help="protected attributes (age, sex, ...): the job refuses to train when one "
        "of them is a model input (drop it with --drop); added to "
        "RISKSERVE_TRAINING_PROTECTED_COLUMNS and recorded with the version",
    )
    parser.add_argument(
        "--candidates",
        help="comma-separated candidates to compete (default: all of the kind: "
        + "; ".join(
            f"{kind}: {','.join(names)}" for kind, names in _candidate_names().items()
        )
        + ")",
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds of cross-validation and hyperparameter search, shared evenly by "
        "the candidates (default: 67 s per million feature values, 10 s to 900 s)",
    )
    parser.add_argument(
        "--folds", type=int, default=3, help="stratified CV folds of the search"
    )
    parser.add_argument(
        "--reasons",
        type=int,
        default=4,
        metavar="K",
        help="credit: adverse-action reason codes per row, the reason_codes output "
        "[-1, K] (default 4)",
    )
    return parser


def _candidate_names() -> dict[str, list[str]]:
    from riskserve.training.candidates import REGISTRY

    return {kind: list(names) for kind, names in REGISTRY.items()}


def parse_candidates(kind: str, text: str | None) -> list[str]:
    """The requested candidates, in order, without repeats; ValueError names the
    unknown ones."""
    if text is None:
        return []
    requested = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    known = _candidate_names()[kind]
    unknown = [n for n in requested if n not in known]
    if unknown or not requested:
        raise ValueError(
            f"unknown candidate {', '.join(map(repr, unknown)) or repr(text)} for "
            f"{kind}; choose from {','.join(known)}"
        )
    return requested


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rows is not None and args.rows < 50:
        return fail(args.kind, f"--rows must be at least 50, got {args.rows}", 2)
    if args.target_precision is not None and not 0 < args.target_precision < 1:
        return fail(args.kind, "--target-precision must be between 0 and 1", 2)

    if args.budget is not None and not args.budget > 0:
        return fail(
            args.kind, f"--budget must be more than 0 seconds, got {args.budget:g}", 2
        )
    if args.folds < 2:
        return fail(args.kind, f"--folds must be at least 2, got {args.folds}", 2)
    if args.events is not None and (args.data is not None or args.target is not None):
        return fail(args.kind, "give --events or --data (with --target), not both", 2)
    if args.positive is not None and args.target is None:
        return fail(args.kind, "--positive needs --target", 2)
    if args.reasons < 1:
        return fail(args.kind, f"--reasons must be at least 1, got {args.reasons}", 2)
    try:
        requested = parse_candidates(args.kind, args.candidates)
    except ValueError as exc:
        return fail(args.kind, str(exc), 2)
    if args.cutoff is not None and args.cutoff_policy is not None:
        return fail(
            args.kind,
            "give --cutoff or --cutoff-policy, not both (--cutoff S is short for "
            "--cutoff-policy score:S)",
            2,
        )
    try:
        policy = parse_policy(
            f"{SCORE}:{args.cutoff!r}"
            if args.cutoff is not None
            else args.cutoff_policy or DEFAULT_POLICY
        )
    except ValueError as exc:
        option = "--cutoff" if args.cutoff is not None else "--cutoff-policy"
        return fail(args.kind, f"{option}: {exc}", 2)

    from riskserve.training.dataset import JobConfig, load_data
    from riskserve.training.decision_graph import ScoreScaling

    config = JobConfig(
        kind=args.kind,
        data=args.data,
        events=args.events,
        target=args.target,
        positive=args.positive,
        rows=args.rows or DEMO_ROWS[args.kind],
        experiment=args.experiment,
        model_name=args.model_name,
        seed=args.seed,
        epochs=args.epochs,
        promote_if_better=args.promote_if_better,
        target_precision=args.target_precision,
        cutoff_policy=str(policy),
        cutoff=policy.value if policy.kind == SCORE else JobConfig.cutoff,
        scaling=ScoreScaling(args.base_score, args.base_odds, args.pdo),
        categorical=args.categorical,
        numeric=args.numeric,
        drop=args.drop,
        candidates=requested,
        budget=args.budget,
        folds=args.folds,
        reasons=args.reasons,
    )
    print(f"[{config.name}] loading data", flush=True)
    try:
        data = load_data(config)
    except DataError as exc:
        return fail(config.name, str(exc), 2)
    from riskserve.training.protected import protected_inputs
    from riskserve.training.settings import TrainingSettings

    settings = TrainingSettings()
    config.protected = list(
        dict.fromkeys([*settings.protected_columns, *args.protected])
    )
    inputs = protected_inputs(config.protected, data.spec.feature_names)
    if inputs:
        return fail(
            config.name,
            f"column {inputs[0]!r} is protected and may not be a model input "
            f"(drop it with --drop {' '.join(inputs)})",
            2,
        )
    print(
        f"[{config.name}] {data.source}: {len(data.target)} rows, "
        f"{len(data.spec.features)} features, positive rate {data.target.mean():.4f}",
        flush=True,
    )

    from mlflow.exceptions import MlflowException
    from riskserve.training.competition.compete import CompetitionError
    from riskserve.training.job import ParityError, run
    from riskserve.training.registry import RegistryError

    try:
        result = run(config, settings, data)
    except (RegistryError, ParityError, CompetitionError) as exc:
        return fail(config.name, f"{exc}; nothing was registered", 1)
    except MlflowException as exc:
        first = (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        return fail(config.name, f"MLflow failed: {first}; nothing was registered", 1)
    except (OSError, ValueError) as exc:
        return fail(
            config.name, f"{type(exc).__name__}: {exc}; nothing was registered", 1
        )
    m = result.metrics
    key = (
        f"PR-AUC {m['pr_auc']:.4f}, ROC-AUC {m['roc_auc']:.4f}, F1 {m['f1']:.4f}"
        if args.kind == "fraud"
        else f"ROC-AUC {m['roc_auc']:.4f}, PR-AUC {m['pr_auc']:.4f}, KS {m['ks']:.4f}, "
        f"approval rate {m['approval_rate']:.3f}"
    )
    print(
        f"registered {result.model_name} v{result.version} "
        f"(aliases: {', '.join(result.aliases)}): {result.winner}, {key}; parity {result.parity:.1e}; "
        f"see {result.ui_url}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

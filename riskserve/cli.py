"""`riskserve`: the human entry point. Each subcommand imports only what it needs, so
`riskserve serve` never pays for TensorFlow and `riskserve train` never for Gradio."""

from __future__ import annotations

import argparse
import sys


def _train(argv: list[str]) -> int:
    from riskserve.training.__main__ import main

    return main(argv)


def _serve(argv: list[str]) -> int:
    from riskserve.serving.__main__ import main

    return main(argv) or 0


def _services(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="riskserve services")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--s3",
        action="store_true",
        help="also run a local S3-compatible server for the artifacts",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also run Redis (Debian's redis-server) as the feature store's online "
        "store",
    )
    args = parser.parse_args(argv)
    from riskserve import local_services
    from riskserve.localplatform.settings import PlatformSettings

    settings = PlatformSettings()
    if args.action == "up":
        env = local_services.up(settings, args.s3, use_redis=args.redis)
        print(f"MLflow UI: {settings.mlflow_url}")
        shown = {k: v for k, v in env.items() if "SECRET" not in k}
        if "RISKSERVE_FEATURES_REDIS_PASSWORD" in shown:  # read from its file
            path = settings.state_dir / "local-redis-password"
            shown["RISKSERVE_FEATURES_REDIS_PASSWORD"] = f'"$(cat {path})"'
        print(
            "to use it from a shell: "
            + " ".join(f"export {k}={v};" for k, v in shown.items())
        )
    elif args.action == "down":
        local_services.down(settings)
    else:
        for name, state in local_services.status(settings).items():
            print(f"{name}: {state}")
    return 0


def _platform(command: str):
    def handler(argv: list[str]) -> int:
        from riskserve.platform_cli import main

        return main(command, argv)

    return handler


def _rollout(argv: list[str]) -> int:
    from riskserve.rollout_cli import main

    return main(argv)


def _policy(argv: list[str]) -> int:
    from riskserve.policy_cli import main

    return main(argv)


def _report(argv: list[str]) -> int:
    from riskserve.governance_cli import report

    return report(argv)


def _decide(command: str):
    def handler(argv: list[str]) -> int:
        from riskserve.governance_cli import decision

        return decision(command, argv)

    return handler


def _decisions(argv: list[str]) -> int:
    from riskserve.governance.records_cli import main

    return main(argv)


def _app(argv: list[str]) -> int:
    from riskserve.app.__main__ import main

    return main(argv)


def _monitor(argv: list[str]) -> int:
    from riskserve.monitoring.cli import main

    return main(argv)


def _demo(argv: list[str]) -> int:
    from riskserve.demo import main

    return main(argv)


COMMANDS = {
    "train": (_train, "train a fraud or credit model and register it in MLflow"),
    "serve": (_serve, "run the v2 predictor for one model (KServe's arguments)"),
    "services": (_services, "start/stop the local MLflow (and S3) server"),
    "up": (_platform("up"), "start the local platform and apply InferenceService YAML"),
    "apply": (_platform("apply"), "apply InferenceService YAML to the local platform"),
    "status": (_platform("status"), "the InferenceServices in KServe's status shape"),
    "down": (_platform("down"), "stop the local platform and its predictors"),
    "delete": (
        _platform("delete"),
        "delete an InferenceService from the local platform",
    ),
    "rollout": (_rollout, "canary rollouts: start, promote, rollback, status"),
    "policy": (_policy, "decision policies: validate, apply, diff, status"),
    "report": (_report, "a version's validation report (HTML, fairness, logged)"),
    "approve": (_decide("approve"), "approve a validated version for production"),
    "reject": (_decide("reject"), "reject a version"),
    "decisions": (_decisions, "decision records: compact, show, export, retention"),
    "app": (_app, "the Gradio analyst app on port 7860"),
    "monitor": (_monitor, "drift and late-label performance from the inference log"),
    "demo": (_demo, "run the whole platform on this machine"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: riskserve <command> [options]\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<10} {help_text}")
        if argv and argv[0] not in {"-h", "--help"}:
            print(f"\nriskserve: error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    handler, _ = COMMANDS[argv[0]]
    try:
        return handler(argv[1:])
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ValueError) as exc:
        print(f"riskserve {argv[0]}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

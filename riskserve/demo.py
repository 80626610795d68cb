"""`riskserve demo` (`make demo`): the whole platform on one machine, from a fresh clone.

Starts MLflow, trains and registers both models, deploys the `fraud` and `credit`
InferenceServices on the local platform, trains a second fraud version and starts it
as a 20% canary, sends fraud traffic (its last third drifted) with the inference
log on and runs the drift monitor on it (printing the command and the report file),
starts the analyst app, prints every URL, and on Ctrl-C stops
everything it started (and only that).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from localplatform.client import (
    apply_yaml,
    start_daemon,
    stop_daemon,
    summary_lines,
    wait_ready,
)
from localplatform.client import status as platform_status
from localplatform.processes import ManagedProcess
from localplatform.settings import PlatformSettings, inherited_environment
from riskserve import local_services
from rollout.controller import LocalBackend, Rollout, resolve_model
from rollout.settings import RolloutSettings

APP_PORT = 7860
TRAFFIC_REQUESTS = 600  # 5 rows each; the last third is the drifted slice


STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[demo {time.monotonic() - STARTED:5.0f}s] {message}", flush=True)


def train(kind: str, env: dict[str, str], extra: list[str]) -> None:
    started = time.monotonic()
    say(f"training {kind} ({' '.join(extra) or 'demo defaults'})")
    result = subprocess.run(
        [sys.executable, "-m", "training", kind, *extra],
        env={**inherited_environment(), **env},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"training {kind} failed (exit {result.returncode}); see above"
        )
    say(f"{kind} trained and registered in {time.monotonic() - started:.0f} s")


def isvc(name: str, storage_uri: str) -> str:
    """The InferenceService as the chart renders it (modelFormat onnx, v2 protocol)."""
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata:\n  name: {name}\n  annotations:\n"
        "    serving.kserve.io/deploymentMode: Serverless\n"
        "spec:\n  predictor:\n    model:\n      modelFormat:\n        name: onnx\n"
        f"      protocolVersion: v2\n      storageUri: {storage_uri}\n"
    )


def send_traffic(gateway: str, requests: int) -> None:
    """Fraud requests through the gateway; the last third with purchases three times
    the customer's median: a drifted slice for the monitor to find."""
    import httpx

    from model.specs import get_spec
    from model.synthetic import generate

    names = get_spec("fraud").feature_names
    rows = generate("fraud", requests * 5, seed=11)[names]
    drifted = rows.index >= len(rows) * 2 // 3
    rows.loc[drifted, "ratio_to_median_purchase_price"] *= 3.0
    with httpx.Client(base_url=gateway, timeout=10) as client:
        for i in range(requests):
            part = rows.iloc[i * 5 : i * 5 + 5]
            body = {
                "inputs": [
                    {
                        "name": n,
                        "shape": [5, 1],
                        "datatype": "FP32",
                        "data": part[n].astype(float).tolist(),
                    }
                    for n in names
                ]
            }
            client.post("/v2/models/fraud/infer", json=body).raise_for_status()


def run_monitor(log_dir: str, env: dict[str, str]) -> None:
    """The monitor on the demo's traffic: the command is printed, then run."""
    command = ["riskserve", "monitor", "fraud", "--log", log_dir]
    say("monitoring the traffic: " + " ".join(command))
    result = subprocess.run(
        [sys.executable, "-m", "monitoring", *command[2:]],
        env={**inherited_environment(), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout, end="", flush=True)
    if result.returncode not in (0, 3):
        say(f"the monitor failed (exit {result.returncode}): {result.stderr[-500:]}")
        return
    report = next(
        (
            line.split(": ", 1)[1]
            for line in result.stdout.splitlines()
            if line.startswith("report: ")
        ),
        None,
    )
    say(f"drift report: {report}" if report else "the monitor wrote no report")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskserve demo")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="store artifacts in a local S3-compatible server",
    )
    parser.add_argument("--fraud-rows", type=int, default=200_000)
    parser.add_argument("--credit-rows", type=int, default=90_000)
    parser.add_argument(
        "--budget",
        type=float,
        default=10.0,
        help="search seconds of each of the demo's training jobs (short, so the demo "
        "is up in minutes; a job's own default scales with its data)",
    )
    parser.add_argument(
        "--no-app", action="store_true", help="do not start the analyst app"
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="stop everything and exit once the demo is up",
    )
    args = parser.parse_args(argv)
    settings = PlatformSettings()
    signal.signal(signal.SIGTERM, _interrupt)
    services_were_running = any(
        state.startswith("running")
        for state in local_services.status(settings).values()
    )
    platform_started = False
    app: ManagedProcess | None = None
    try:
        env = local_services.up(settings, args.s3, say=say)
        budget = ["--budget", f"{args.budget:g}"]
        train("fraud", env, ["--rows", str(args.fraud_rows), *budget])
        train("credit", env, ["--rows", str(args.credit_rows), *budget])

        say(f"starting the local platform (gateway {settings.gateway_url})")
        # Every predictor writes the inference log the monitor reads.
        log_dir = str(settings.state_dir / "inference-log")
        platform_started = start_daemon(
            settings,
            {
                **env,
                "RISKSERVE_SERVING_INFERENCE_LOG_URI": log_dir,
                "RISKSERVE_SERVING_INFERENCE_LOG_FLUSH_SECONDS": "0.5",
            },
        )
        rollout_settings = RolloutSettings(
            mlflow_tracking_uri=env["MLFLOW_TRACKING_URI"]
        )
        for name in ("fraud", "credit"):
            # A fixed version, not the alias: a restarted revision must serve the same model.
            champion = resolve_model(
                f"models:/{name}@champion", rollout_settings, for_kserve=False
            )
            for message in apply_yaml(settings, isvc(name, champion.storage_uri)):
                say(message)
        wait_ready(settings, ["fraud", "credit"], settings.predictor_ready_timeout_s)

        if not args.no_app:
            say(f"starting the analyst app on http://{settings.host}:{APP_PORT}")
            app = ManagedProcess(
                name="analyst app",
                argv=[sys.executable, "-m", "app", "--port", str(APP_PORT)],
                log_path=settings.state_dir / "logs" / "app.log",
                env={
                    **inherited_environment(),
                    "RISKSERVE_APP_GATEWAY_URL": settings.gateway_url,
                    "RISKSERVE_APP_HOST": settings.host,
                    "GRADIO_ANALYTICS_ENABLED": "False",
                },
            ).start()  # its imports run while the canary trains

        # The canary is the gradient-boosting candidate alone: a different model
        # family against the competition's winner, and a shorter wait.
        train(
            "fraud",
            env,
            [
                "--rows",
                str(args.fraud_rows),
                "--seed",
                "7",
                "--candidates",
                "gbm",
                *budget,
            ],
        )
        rollout = Rollout(LocalBackend(settings), rollout_settings, say=say)
        rollout.start("fraud", "models:/fraud@challenger", 20)
        wait_ready(settings, ["fraud"], settings.predictor_ready_timeout_s)

        say(f"sending {TRAFFIC_REQUESTS} fraud requests (the last third drifted)")
        send_traffic(settings.gateway_url, TRAFFIC_REQUESTS)
        time.sleep(1.5)  # the inference log's last batch is written
        run_monitor(log_dir, env)

        if app is not None:
            app.wait_ready(f"http://{settings.host}:{APP_PORT}/", timeout=120)

        for line in summary_lines(platform_status(settings)):
            say(line)
        gateway = settings.gateway_url
        print(
            f"\n[demo] riskserve is up, {time.monotonic() - STARTED:.0f} s after the start:\n"
            f"  MLflow UI            {settings.mlflow_url}  (models: {settings.mlflow_url}/#/models)\n"
            f"  v2 gateway           {gateway}/v2/models/fraud/infer, {gateway}/v2/models/credit/infer\n"
            f"  platform status      riskserve status   (or {gateway}/platform/status)\n"
            f"  canary               fraud: 20% to the new version; riskserve rollout status fraud\n"
            f"  drift monitor        riskserve monitor fraud --log {log_dir}\n"
            + (
                f"  analyst app          http://{settings.host}:{APP_PORT}\n"
                if app
                else ""
            )
            + "  try:  curl -s "
            f"{gateway}/v2/models/fraud -H 'content-type: application/json'\n",
            flush=True,
        )
        if not args.no_wait:
            say("press Ctrl-C to stop everything the demo started")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print(flush=True)
    finally:
        if app is not None:
            say("stopping the analyst app")
            app.stop()
        if platform_started:
            say("stopping the local platform and its predictors")
            stop_daemon(settings)
        if not services_were_running:
            local_services.down(settings, say=say)
    return 0

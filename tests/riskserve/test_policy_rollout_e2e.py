"""A cut-off change rolled out as a policy, not a training run, on the local platform
as it runs: the credit InferenceService (the contract credit model, a Feast repository
of generated customers, the transformer with policy v1 in the registry's
`credit-policy`), then `riskserve policy rollout credit --alias challenger --percent
50` (policy v2, another cut-off): a second transformer revision takes about half the
decisions, each naming its policy version and decided by its cut-off; `--promote` is
refused until v2 is approved (`riskserve approve credit-policy 2`), then v2 decides
everything and `champion` moves; `--rollback`: v1 again. Then `--auto` under live
checkouts: refused for an unapproved v3, promotes it once approved, and rolls back a
v4 whose transformer cannot start (exit 3, one line). The predictor keeps its one
revision throughout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from riskserve.localplatform.client import apply_yaml, status, wait_ready
from riskserve.transformer.policy import Policy, parse_policy

from tests.fixtures.contract_models import credit_model, write_onnx
from tests.localplatform.platform_helpers import Platform
from tests.localplatform.test_transformer_platform import isvc_with_transformer
from tests.rollout.test_auto_rollout import Traffic
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    build_customer_repo,
    child_environment,
    outputs,
    raw_checkout,
)

pytestmark = pytest.mark.e2e

# v1 approves a finite score; v2 none; v3 (the --auto test's) those at 600 and over;
# v5 (the --auto test's typo) none, as v2
CUTOFFS = {"v1": 0.0, "v2": 100_000.0, "v3": 600.0, "v5": 100_000.0}


def cutoff_policy(label: str) -> Policy:
    text = f"""
name: credit-cutoff-{label}
kind: credit
model: credit
rules:
  - name: cutoff
    when:
      - {{field: credit_score, ge: {CUTOFFS[label]}}}
    action: approve
    reason: SCORE_AT_CUTOFF
default:
  action: decline
  reason: SCORE_BELOW_CUTOFF
"""
    return parse_policy(text.encode(), f"{label}.yaml")


@dataclass
class Stack:
    folder: Path
    platform: Platform
    env: dict[str, str]
    versions: dict[str, str]  # policy hash -> v1 / v2
    client: object


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import mlflow
    from mlflow import MlflowClient
    from riskserve.rollout.settings import RolloutSettings

    from riskserve.policy_cli import apply_policy, resolve_policy_uri

    folder = tmp_path_factory.mktemp("policy-rollout")
    repo = build_customer_repo(folder, customers=10, days=60)
    write_onnx(credit_model(), folder / "model")
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    cwd = Path.cwd()
    os.chdir(folder)  # MLflow's default artifact root (./mlruns) lands here
    uri = f"sqlite:///{folder}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    platform = Platform(folder / "state")
    try:
        client = MlflowClient(uri)
        versions = {}
        for label, alias in (("v1", "champion"), ("v2", "challenger")):
            policy = cutoff_policy(label)
            apply_policy(client, policy, "credit", "7", alias)
            versions[policy.version] = label
        _, v1_uri = resolve_policy_uri(
            "models:/credit-policy@champion", RolloutSettings()
        )
        platform.start()
        env_lines = (
            "        env:\n"
            "          - name: RISKSERVE_TRANSFORMER_POLICY_URI\n"
            f"            value: {v1_uri}\n"
        )
        apply_yaml(
            platform.settings,
            isvc_with_transformer(
                folder / "model", repo.repo, transformer_env=env_lines, name="credit"
            ),
        )
        wait_ready(platform.settings, ["credit"], 180)
        env = {**child_environment(), **platform.env, "MLFLOW_TRACKING_URI": uri}
        yield Stack(folder, platform, env, versions, client)
    finally:
        platform.stop()
        platform.client.close()
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def start_rollout(stack: Stack, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "riskserve", "policy", "rollout", "credit", *args],
        env=stack.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(command: subprocess.Popen) -> str:
    out, err = command.communicate(timeout=180)
    assert command.returncode == 0, err
    return out


def rollout(stack: Stack, *args: str) -> str:
    return finished(start_rollout(stack, *args))


def approve(stack: Stack, version: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "riskserve", "approve", "credit-policy", version]
        + ["--by", "risk-lead", "--note", "cut-off agreed at the credit committee"],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"credit-policy v{version}: approved by risk-lead" in done.stdout


_sent = [0]


def decide(stack: Stack) -> tuple[str, str, str]:
    """One checkout through the gateway: (transformer revision, policy v1/v2,
    whether the action is the one that version's cut-off gives)."""
    _sent[0] += 1
    when = int(time.time() * 1e6) + _sent[0]
    answer = stack.platform.client.post(
        "/v2/models/credit/infer",
        json=raw_checkout(f"rollout-{_sent[0] % 7}", when, 90.0, "Electronics"),
    )
    assert answer.status_code == 200, answer.text
    got = outputs(answer)
    label = stack.versions[got["policy_version"][0]]
    score = got["credit_score"][0]
    score = float("nan") if score is None else float(score)
    expected = "approve" if score >= CUTOFFS[label] else "decline"
    assert got["action"] == [expected], (label, score, got["action"])
    assert got["policy_rule"] == ["cutoff" if expected == "approve" else "default"]
    return answer.headers["x-riskserve-revision"], label, expected


def until_all(stack: Stack, label: str, started: float, timeout: float = 180) -> float:
    """Seconds from `started` to the first of 20 answers in a row naming `label`
    (decisions are sent meanwhile, while the command runs too)."""
    in_a_row, first = 0, 0.0
    while in_a_row < 20:
        assert time.monotonic() - started < timeout, f"not all {label}"
        sent = time.monotonic()
        _, got, _ = decide(stack)
        if got == label:
            first = first if in_a_row else sent
            in_a_row += 1
        else:
            in_a_row = 0
            time.sleep(0.05)
    return first - started


def components(stack: Stack) -> dict:
    (item,) = [
        i
        for i in status(stack.platform.settings)["inferenceservices"]
        if i["metadata"]["name"] == "credit"
    ]
    return item["status"]["components"]


def champion(stack: Stack) -> str:
    from mlflow import MlflowClient

    assert isinstance(stack.client, MlflowClient)
    return str(
        stack.client.get_model_version_by_alias("credit-policy", "champion").version
    )


def test_a_cutoff_change_is_canaried_promoted_and_rolled_back(stack: Stack) -> None:
    assert {decide(stack)[1] for _ in range(5)} == {"v1"}
    said = rollout(stack, "--alias", "challenger", "--percent", "50")
    assert "credit-policy version 2 (challenger) with 50% of traffic" in said
    wait_ready(stack.platform.settings, ["credit"], 180)
    split = components(stack)["transformer"]["traffic"]
    assert sorted(t["percent"] for t in split) == [50, 50]

    answers = [decide(stack) for _ in range(200)]
    by_label = Counter(label for _, label, _ in answers)
    print(f"canary at 50%: {dict(by_label)} of 200 decisions")
    # 50% of 200: 100 expected, sd 7.1; 60-140 is more than 5 sd either side
    assert 60 <= by_label["v2"] <= 140, by_label
    assert by_label["v1"] + by_label["v2"] == 200
    # each transformer revision serves one policy; the predictor has one revision
    revisions = {rev: label for rev, label, _ in answers}
    assert sorted(revisions.values()) == ["v1", "v2"], revisions
    assert len(components(stack)["predictor"]["traffic"]) == 1
    assert {"approve", "decline"} <= {action for _, _, action in answers}

    # the approval gate: `policy apply` validated v2, nobody approved it
    command = start_rollout(stack, "--promote")
    _, err = command.communicate(timeout=180)
    assert command.returncode == 2, err
    assert err.strip().startswith(
        "riskserve policy rollout: error: refused to promote: credit-policy v2 is "
        "validated, not approved: `riskserve approve credit-policy 2 --by NAME "
        "--note TEXT` first"
    ), err
    assert sorted(
        t["percent"] for t in components(stack)["transformer"]["traffic"]
    ) == [
        50,
        50,
    ]
    approve(stack, "2")

    started = time.monotonic()
    command = start_rollout(stack, "--promote")
    promoted_s = until_all(stack, "v2", started)
    said = finished(command)
    command_s = time.monotonic() - started
    assert "MLflow alias champion -> credit-policy v2" in said
    print(
        f"promote: every decision v2 from {promoted_s:.2f} s after the command "
        f"started (the command, with MLflow's alias, {command_s:.2f} s; load "
        f"{os.getloadavg()[0]:.1f})"
    )
    assert champion(stack) == "2"
    assert [t["percent"] for t in components(stack)["transformer"]["traffic"]] == [100]

    started = time.monotonic()
    command = start_rollout(stack, "--rollback")
    rolled_back_s = until_all(stack, "v1", started)
    said = finished(command)
    command_s = time.monotonic() - started
    assert "credit-policy/1" in said and "champion -> credit-policy v1" in said
    print(
        f"rollback: every decision v1 from {rolled_back_s:.2f} s after the command "
        f"started (the command {command_s:.2f} s; a new transformer revision starts)"
    )
    assert champion(stack) == "1"
    assert len(components(stack)["predictor"]["traffic"]) == 1


class CheckoutTraffic(Traffic):
    """Checkouts through the gateway from a background thread while `--auto` judges
    the canary (the gates need requests in every window)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(str(stack.platform.client.base_url))

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for sent in range(100_000):  # bounded: stopped long before
                if self._stop.is_set():
                    return
                when = int(time.time() * 1e6) + sent
                answer = client.post(
                    "/v2/models/credit/infer",
                    json=raw_checkout(f"auto-{sent % 7}", when, 90.0, "Electronics"),
                )
                self.codes[answer.status_code] += 1


def apply_challenger(stack: Stack, label: str, text: str) -> str:
    from riskserve.policy_cli import apply_policy

    policy = parse_policy(text.encode(), f"{label}.yaml")
    version, _ = apply_policy(stack.client, policy, "credit", "7", "challenger")
    stack.versions[policy.version] = label
    return version


def auto(stack: Stack, *extra: str) -> subprocess.CompletedProcess:
    # Latency is given room: a 3 s window of one client's checkouts on a shared
    # machine is a few dozen canary requests, whose p99 is their slowest (the gate's
    # arithmetic is proved on recorded windows in tests/rollout/test_rollout_gates.py).
    env = {**stack.env, "RISKSERVE_ROLLOUT_P99_SLACK_MS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "riskserve", "policy", "rollout", "credit"]
        + ["--alias", "challenger", "--auto", "--steps", "50,100", "--window", "3"]
        + list(extra),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_auto_promotes_an_approved_policy_and_rolls_back_one_that_breaks(
    stack: Stack,
) -> None:
    v3 = apply_challenger(stack, "v3", cutoff_policy("v3").text.decode())
    refused = auto(stack)  # not approved: refused before any traffic moves
    assert refused.returncode == 2, refused.stderr
    assert f"credit-policy v{v3} is validated, not approved" in refused.stderr
    before = components(stack)["transformer"]
    assert before["latestCreatedRevision"] == before["latestRolledoutRevision"]

    # A cut-off typed wrong (v5 declines every checkout): no error, no slow answer;
    # the action-mix gate rolls it back at its first step
    v5 = apply_challenger(stack, "v5", cutoff_policy("v5").text.decode())
    approve(stack, v5)
    with CheckoutTraffic(stack) as traffic:
        typo = auto(stack)
    assert typo.returncode == 3, typo.stdout + typo.stderr
    (last,) = typo.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(
        r"riskserve policy rollout: rolled back: action mix shifted: approve 0\.0% of "
        r"\d+ canary rows vs 100\.0% of \d+ stable \(100\.0 points > 10 allowed "
        r"\+ \d+\.\d sampling\)",
        last,
    ), typo.stderr
    assert set(traffic.codes) == {200}, traffic.codes
    assert champion(stack) == "1"

    stack.client.set_registered_model_alias("credit-policy", "challenger", v3)
    approve(stack, v3)
    started = time.monotonic()
    with CheckoutTraffic(stack) as traffic:
        # v3 declines every checkout of this traffic too (its customers are unknown:
        # one default score, under 600), and that is meant: the operator says so
        # (the bound's arithmetic: tests/rollout/test_action_mix_gate.py)
        done = auto(stack, "--max-action-shift", "1")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # each window's mix, counted per transformer revision by the gateway
    assert "actions decline 100% (stable approve 100%)" in done.stdout, done.stdout
    assert traffic.codes[200] > 0 and set(traffic.codes) == {200}, traffic.codes
    assert "step 1/2" in done.stdout and "step 2/2" in done.stdout
    assert f"MLflow alias champion -> credit-policy v{v3}" in done.stdout
    print(
        f"--auto (steps 50,100, 3 s windows): promoted in {took:.1f} s, "
        f"{sum(traffic.codes.values())} checkouts meanwhile; load "
        f"{os.getloadavg()[0]:.1f}"
    )
    assert champion(stack) == v3
    until_all(stack, "v3", time.monotonic())

    # A policy registered without `policy apply`'s check names a field the model
    # lacks: its transformer refuses to start; --auto rolls back, naming why.
    broken = cutoff_policy("v1").text.decode().replace("credit_score", "no_such_field")
    v4 = apply_challenger(stack, "v4", broken.replace("cutoff-v1", "cutoff-v4"))
    approve(stack, v4)
    with CheckoutTraffic(stack) as traffic:
        failed = auto(stack)
    assert failed.returncode == 3, failed.stderr
    (last,) = failed.stderr.strip().splitlines()[-1:]
    assert last.startswith(
        "riskserve policy rollout: rolled back: the new revision failed: "
        "credit-transformer-"
    ), failed.stderr
    assert set(traffic.codes) == {200}, traffic.codes  # v3 answered throughout
    assert champion(stack) == v3
    assert {decide(stack)[1] for _ in range(20)} == {"v3"}

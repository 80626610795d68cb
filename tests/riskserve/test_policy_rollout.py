"""`riskserve policy rollout` in process: what the local platform accepts in a
transformer's policy setting (a path under the model roots or `s3://`; a `models:/`
URI refused with the chart's line; `--features none` only with a policy), and on a
cluster the merge patches a rollout sends to the InferenceService (a fake Kubernetes
API that keeps the object and moves KServe's transformer status as KServe does), with
a SQLite MLflow registry resolving the aliases."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
from riskserve.localplatform.apply_check import check_documents
from riskserve.localplatform.spec_rules import load_yaml_documents
from riskserve.rollout.controller import KServeBackend, RolloutError
from riskserve.rollout.settings import RolloutSettings
from riskserve.transformer.policy import parse_policy

from riskserve.cli import main
from riskserve.policy_cli import (
    POLICY_URI_ENV,
    CommandError,
    PolicyRollout,
    apply_policy,
    resolve_policy_uri,
)
from tests.localplatform.test_transformer_platform import isvc_with_transformer
from tests.rollout.test_rollout_gates import FakeClock

pytestmark = pytest.mark.inprocess


def env_lines(value: str) -> str:
    return (
        "        env:\n"
        f"          - name: {POLICY_URI_ENV}\n"
        f"            value: {value!r}\n"
    )


def problems(text: str, roots: list[Path]) -> list[str]:
    ((_, errors),) = check_documents(load_yaml_documents(text), 20, roots)
    return errors


def test_the_local_platform_takes_a_policy_uri_as_it_takes_a_feature_repo(
    tmp_path: Path,
) -> None:
    roots = [tmp_path.resolve()]
    model, repo = tmp_path / "model", tmp_path / "repo"
    policy = tmp_path / "policy.yaml"
    for ok in (str(policy), f"file://{policy}", "s3://models/credit-policy/2", ""):
        spec = isvc_with_transformer(model, repo, transformer_env=env_lines(ok))
        assert problems(spec, roots) == [], ok
    (error,) = problems(
        isvc_with_transformer(
            model, repo, transformer_env=env_lines("models:/fraud-policy@champion")
        ),
        roots,
    )
    # the chart's line (helm/riskserve/templates/inference-services.yaml)
    assert error == (
        f"spec.transformer.containers[0].env {POLICY_URI_ENV}: "
        "models:/fraud-policy@champion: resolve it to its s3:// URI first "
        "(riskserve policy status --model fraud); the transformer reads no MLflow"
    )
    (error,) = problems(
        isvc_with_transformer(model, repo, transformer_env=env_lines("/etc/p.yaml")),
        roots,
    )
    assert "'/etc/p.yaml' is outside the model roots" in error
    (error,) = problems(
        isvc_with_transformer(
            model, repo, transformer_env=env_lines("https://example.com/p.yaml")
        ),
        roots,
    )
    assert "use s3://bucket/prefix or a local path" in error


def test_policy_only_on_the_local_platform_needs_a_policy_and_no_feature_repo(
    tmp_path: Path,
) -> None:
    roots = [tmp_path.resolve()]
    model, policy = tmp_path / "model", tmp_path / "policy.yaml"
    spec = isvc_with_transformer(
        model, tmp_path / "repo", transformer_env=env_lines(str(policy))
    )
    policy_only = spec.replace(
        f'        - "--feature_repo"\n        - "{tmp_path / "repo"}"\n',
        '        - "--features"\n        - "none"\n',
    )
    assert policy_only != spec
    assert problems(policy_only, roots) == []
    (error,) = problems(policy_only.replace(env_lines(str(policy)), ""), roots)
    assert error == (
        f"spec.transformer.containers[0].env: --features none needs {POLICY_URI_ENV} "
        "(policy only)"
    )
    both = isvc_with_transformer(
        model,
        tmp_path / "repo",
        transformer_args=("--features", "none"),
        transformer_env=env_lines(str(policy)),
    )
    (error,) = problems(both, roots)
    assert "--feature_repo with --features none" in error


# -- on a cluster: the merge patches ------------------------------------------------


def merge(target: dict, patch: dict) -> dict:
    """RFC 7386, as the API server applies a merge patch to a custom object."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeKServe:
    """The Kubernetes API for one InferenceService: merge patches applied, and the
    transformer's status moved as KServe moves it (a new revision when its spec
    changes, all traffic to it without canaryTrafficPercent)."""

    def __init__(self, isvc: dict) -> None:
        self.isvc = isvc
        self.patches: list[dict] = []
        self.revision = 1

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        assert (namespace, name) == ("riskserve", "credit")
        return copy.deepcopy(self.isvc)

    def patch_namespaced_custom_object(
        self, group, version, namespace, plural, name, body
    ):
        self.patches.append(copy.deepcopy(body))
        before = copy.deepcopy(self.isvc["spec"]["transformer"])
        merge(self.isvc, body)
        spec = self.isvc["spec"]["transformer"]
        status = self.isvc["status"]["components"]["transformer"]
        if {k: v for k, v in spec.items() if k != "canaryTrafficPercent"} != {
            k: v for k, v in before.items() if k != "canaryTrafficPercent"
        }:
            self.revision += 1
            status["latestCreatedRevision"] = f"credit-transformer-{self.revision:05d}"
        latest = status["latestCreatedRevision"]
        percent = spec.get("canaryTrafficPercent")
        if percent is None and latest != status["latestRolledoutRevision"]:
            status["previousRolledoutRevision"] = status["latestRolledoutRevision"]
            status["latestRolledoutRevision"] = latest
        stable = status["latestRolledoutRevision"]
        status["traffic"] = (
            [{"revisionName": stable, "percent": 100}]
            if latest == stable
            else [
                {"revisionName": latest, "percent": percent},
                {"revisionName": stable, "percent": 100 - percent},
            ]
        )
        return self.isvc


def chart_isvc(policy_uri: str) -> dict[str, Any]:
    """The credit InferenceService as the chart renders its transformer (trimmed)."""
    return {
        "metadata": {"name": "credit", "annotations": {}},
        "spec": {
            "predictor": {"model": {"storageUri": "s3://mlflow/credit/champion"}},
            "transformer": {
                "minReplicas": 1,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "ghcr.io/example/riskserve-transformer:1",
                        "args": ["--model_name=credit", "--feature_repo=/tmp/repo"],
                        "envFrom": [{"secretRef": {"name": "riskserve-s3"}}],
                        "env": [
                            {
                                "name": "RISKSERVE_TRANSFORMER_FAIL_OPEN",
                                "value": "false",
                            },
                            {"name": POLICY_URI_ENV, "value": policy_uri},
                        ],
                    }
                ],
            },
        },
        "status": {
            "components": {
                "transformer": {
                    "latestCreatedRevision": "credit-transformer-00001",
                    "latestReadyRevision": "credit-transformer-00001",
                    "latestRolledoutRevision": "credit-transformer-00001",
                    "previousRolledoutRevision": None,
                    "traffic": [
                        {"revisionName": "credit-transformer-00001", "percent": 100}
                    ],
                }
            }
        },
    }


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """credit-policy v1 (champion) and v2 (challenger) in a SQLite registry (its
    artifacts on this machine: the URIs are local folders)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    for cutoff, alias in ((600, "champion"), (640, "challenger")):
        text = (
            f"name: cutoff-{cutoff}\nkind: credit\nmodel: credit\nrules:\n"
            f"  - {{name: cutoff, when: [{{field: credit_score, ge: {cutoff}}}], "
            "action: approve, reason: AT_CUTOFF}\n"
            "default: {action: decline, reason: BELOW_CUTOFF}\n"
        )
        apply_policy(
            client, parse_policy(text.encode(), "p.yaml"), "credit", "7", alias
        )
    yield client
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", ""))


def test_on_a_cluster_a_policy_rolls_out_as_a_transformer_canary(registry) -> None:
    settings = RolloutSettings()
    _, v1 = resolve_policy_uri("models:/credit-policy@champion", settings)
    _, v2 = resolve_policy_uri("models:/credit-policy@challenger", settings)
    assert v1 != v2
    api = FakeKServe(chart_isvc(v1))
    said: list[str] = []
    rollout = PolicyRollout(KServeBackend("riskserve", api), settings, said.append)

    rollout.start("credit", "challenger", 10, "credit")
    (body,) = api.patches
    transformer = body["spec"]["transformer"]
    assert transformer["canaryTrafficPercent"] == 10
    assert "predictor" not in body["spec"]  # the model is untouched
    # a merge patch replaces a list whole: the container is sent whole, its other
    # settings kept, the policy's changed
    (container,) = transformer["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "riskserve-s3"}}]
    assert container["args"] == ["--model_name=credit", "--feature_repo=/tmp/repo"]
    assert container["env"] == [
        {"name": "RISKSERVE_TRANSFORMER_FAIL_OPEN", "value": "false"},
        {"name": POLICY_URI_ENV, "value": v2},
    ]
    annotations = body["metadata"]["annotations"]
    assert annotations["riskserve.io/policy-version"] == "credit-policy/2"
    assert annotations["riskserve.io/policy-previous-version"] == "credit-policy/1"
    assert said[-1].startswith(
        "credit: new transformer revision for credit-policy version 2 (challenger) "
        "with 10% of traffic"
    )
    traffic = api.isvc["status"]["components"]["transformer"]["traffic"]
    assert traffic == [
        {"revisionName": "credit-transformer-00002", "percent": 10},
        {"revisionName": "credit-transformer-00001", "percent": 90},
    ]
    with pytest.raises(CommandError, match="is the policy it serves already"):
        rollout.start("credit", "challenger", 10, "credit")

    # the approval gate: validated by `policy apply`, not yet approved
    sent = len(api.patches)
    with pytest.raises(RolloutError) as refused:
        rollout.promote("credit")
    assert str(refused.value).startswith(
        "refused to promote: credit-policy v2 is validated, not approved: "
        "`riskserve approve credit-policy 2 --by NAME --note TEXT` first"
    )
    assert len(api.patches) == sent  # nothing changed
    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    rollout.promote("credit")
    assert api.patches[-1] == {"spec": {"transformer": {"canaryTrafficPercent": None}}}
    assert "canaryTrafficPercent" not in api.isvc["spec"]["transformer"]
    assert str(
        registry.get_model_version_by_alias("credit-policy", "champion").version
    ) == ("2")
    with pytest.raises(CommandError, match="no transformer canary to promote"):
        rollout.promote("credit")

    # promoted: the rollback is the previous policy as a new revision, all traffic
    rollout.rollback("credit")
    env = api.isvc["spec"]["transformer"]["containers"][0]["env"]
    assert {"name": POLICY_URI_ENV, "value": v1} in env
    status = api.isvc["status"]["components"]["transformer"]
    assert status["latestRolledoutRevision"] == "credit-transformer-00003"
    assert str(
        registry.get_model_version_by_alias("credit-policy", "champion").version
    ) == ("1")
    assert "riskserve.io/policy-previous-uri" not in api.isvc["metadata"]["annotations"]

    # a canary rolled back: its share to 0, all traffic to the rolled-out revision
    rollout.start("credit", "challenger", 25, "credit")
    rollout.rollback("credit")
    assert api.patches[-1] == {"spec": {"transformer": {"canaryTrafficPercent": 0}}}
    assert said[-1] == (
        "credit: rolled the transformer back to credit-transformer-00003; "
        "champion alias unchanged"
    )


def test_a_service_without_a_transformer_is_refused_before_any_change(
    registry,
) -> None:
    isvc = chart_isvc("")
    del isvc["spec"]["transformer"]
    api = FakeKServe(isvc)
    rollout = PolicyRollout(
        KServeBackend("riskserve", api), RolloutSettings(), lambda _: None
    )
    with pytest.raises(CommandError, match="credit has no spec.transformer"):
        rollout.start("credit", "challenger", 10, "credit")
    assert api.patches == []


def test_a_policy_version_is_validated_when_applied_and_approved_by_its_hash(
    registry, capsys
) -> None:
    from riskserve.governance.approvals import POLICY_SHA_TAG
    from riskserve.governance.status import status_of, trail_of

    tags = dict(registry.get_model_version("credit-policy", "2").tags)
    assert status_of(tags) == "validated"
    (validated,) = trail_of(tags)
    assert validated.note == "policy checked against credit/7 (riskserve policy apply)"
    assert validated.report_sha256 == tags[POLICY_SHA_TAG]

    capsys.readouterr()
    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    said = capsys.readouterr().out
    tags = dict(registry.get_model_version("credit-policy", "2").tags)
    approved = trail_of(tags)[-1]
    # the line names what was approved: this YAML, by its hash
    assert said.strip().endswith(f"(policy YAML sha256 {tags[POLICY_SHA_TAG][:16]})"), (
        said
    )
    # what was approved is this exact YAML: a registered version's cannot change
    assert (approved.status, approved.by, approved.note) == ("approved", "ana", "ok")
    assert approved.report_sha256 == tags[POLICY_SHA_TAG]
    capsys.readouterr()
    assert main(["policy", "status", "--model", "credit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f" approved by ana at {approved.at} " in lines[1]  # version 2 first
    assert lines[2].startswith("  version 1 [champion] validated sha256 ")


# -- --auto: the model rollout's gates on the transformer's revisions -----------------


class JudgedKServe(FakeKServe):
    """FakeKServe whose new transformer revisions are ready at once, and whose
    revisions' counters (the gateway's own RevisionStats) grow with every read: each
    revision serves 40 requests at 3 ms; the canary also `canary_errors` 503s. Each
    request's action: 24 approve, 16 decline (60%) on the stable revision, the
    canary's own mix of 40 when given."""

    def __init__(
        self,
        isvc: dict,
        canary_errors: int = 0,
        canary_actions: dict[str, int] | None = None,
    ) -> None:
        super().__init__(isvc)
        isvc["status"]["conditions"] = []
        self.canary_errors = canary_errors
        self.canary_actions = canary_actions or {"approve": 24, "decline": 16}
        self.stats: dict = {}
        self.actions: dict[str, dict[str, int]] = {}
        self.components_read: list[str] = []

    def patch_namespaced_custom_object(self, *args, **kwargs):
        found = super().patch_namespaced_custom_object(*args, **kwargs)
        status = self.isvc["status"]["components"]["transformer"]
        status["latestReadyRevision"] = status["latestCreatedRevision"]
        return found

    def revision_metrics(self, isvc: str, component: str) -> dict:
        from riskserve.localplatform.gateway import RevisionStats

        self.components_read.append(component)
        status = self.isvc["status"]["components"]["transformer"]
        for entry in status["traffic"]:
            name = entry["revisionName"]
            stats = self.stats.setdefault(name, RevisionStats())
            for _ in range(40):
                stats.record(200, 0.003)
            mix = {"approve": 24, "decline": 16}
            if name != status["latestRolledoutRevision"]:
                for _ in range(self.canary_errors):
                    stats.record(503, 0.003)
                mix = self.canary_actions
            counted = self.actions.setdefault(name, {})
            for action, count in mix.items():
                counted[action] = counted.get(action, 0) + count
        return {
            name: {
                "ready": True,
                **stats.snapshot(),
                "score_counts": [],
                "action_counts": dict(self.actions[name]),
            }
            for name, stats in self.stats.items()
        }


class JudgedBackend(KServeBackend):
    def revision_metrics(self, isvc: str, component: str = "predictor") -> dict:
        return self._api.revision_metrics(isvc, component)


def judged(
    registry, canary_errors: int, canary_actions: dict[str, int] | None = None
) -> tuple[PolicyRollout, JudgedKServe, list]:
    settings = RolloutSettings(window_s=2, min_requests=20, steps="20,100")
    _, v1 = resolve_policy_uri("models:/credit-policy@champion", settings)
    api = JudgedKServe(chart_isvc(v1), canary_errors, canary_actions)
    said: list[str] = []
    backend = JudgedBackend("riskserve", api)
    return PolicyRollout(backend, settings, said.append), api, said


def champion(registry) -> str:
    return str(registry.get_model_version_by_alias("credit-policy", "champion").version)


def test_auto_refuses_an_unapproved_policy_before_any_traffic_moves(registry):
    rollout, api, _ = judged(registry, canary_errors=0)
    with pytest.raises(RolloutError, match="credit-policy v2 is validated, not appr"):
        rollout.auto("credit", "challenger", [20, 100], "credit", FakeClock())
    assert api.patches == []


def test_auto_promotes_a_policy_whose_transformer_holds_every_gate(registry):
    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    rollout, api, said = judged(registry, canary_errors=0)
    assert rollout.auto("credit", "challenger", [20, 100], "credit", FakeClock())
    # the transformer's revisions are judged, at each step's share, then promoted
    assert set(api.components_read) == {"transformer"}
    percents = [
        p["spec"]["transformer"].get("canaryTrafficPercent", "-")
        for p in api.patches
        if "spec" in p
    ]
    assert percents == [20, 100, None]
    assert any("errors 0.0%, p99" in line for line in said), said
    # the action mix of each window beside its stable revision's
    assert any(
        line.endswith(
            "actions approve 60%, decline 40% (stable approve 60%, decline 40%)"
        )
        for line in said
    ), said
    assert "canaryTrafficPercent" not in api.isvc["spec"]["transformer"]
    assert champion(registry) == "2"


def test_auto_rolls_a_failing_policy_back_and_the_command_names_the_gate(
    registry, monkeypatch, capsys
):
    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    rollout, api, said = judged(registry, canary_errors=2)  # 2 of 42: 4.8%
    assert not rollout.auto("credit", "challenger", [20, 100], "credit", FakeClock())
    assert rollout.last_failure == "canary error rate 4.8% > 1.0%"
    assert api.patches[-1] == {"spec": {"transformer": {"canaryTrafficPercent": 0}}}
    assert said[-1] == (
        "credit: rolled the transformer back to credit-transformer-00001 (canary "
        "error rate 4.8% > 1.0%); champion alias unchanged"
    )
    assert champion(registry) == "1"

    # the command: exit 3 and one line naming the gate
    import riskserve.policy_cli as policy_cli

    fresh, _, _ = judged(registry, canary_errors=2)
    monkeypatch.setattr(policy_cli, "rollout_backend", lambda settings: fresh.backend)
    argv = ["--auto", "--steps", "20,100", "--window", "0.5"]  # real time: 1 s
    code = main(["policy", "rollout", "credit", *argv])
    err = capsys.readouterr().err
    assert code == 3
    assert err.splitlines()[-1] == (
        "riskserve policy rollout: rolled back: canary error rate 4.8% > 1.0%"
    )


def test_auto_rolls_back_a_policy_that_declines_everyone_at_zero_errors(registry):
    """The typo the error and latency gates cannot see: a cut-off that declines every
    checkout. The action-mix gate rolls it back at the first step."""
    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    rollout, api, said = judged(registry, 0, {"decline": 40})
    assert not rollout.auto("credit", "challenger", [20, 100], "credit", FakeClock())
    assert re.fullmatch(
        r"action mix shifted: approve 0\.0% of \d+ canary rows vs 60\.0% of \d+ "
        r"stable \(60\.0 points > 10 allowed \+ \d+\.\d sampling\)",
        rollout.last_failure,
    ), rollout.last_failure
    assert api.patches[-1] == {"spec": {"transformer": {"canaryTrafficPercent": 0}}}
    assert champion(registry) == "1"


def test_max_action_shift_lets_the_intended_shift_through(
    registry, monkeypatch, capsys
):
    """A cut-off meant to decline more: 20 points beyond the default bound and its
    sampling allowance on 40 rows is rolled back; `--max-action-shift 0.5` says the
    shift is intended and the policy is promoted."""
    import riskserve.policy_cli as policy_cli

    assert main(["approve", "credit-policy", "2", "--by", "ana", "--note", "ok"]) == 0
    shifted = {"approve": 4, "decline": 36}  # 10% approve against 60%
    argv = ["policy", "rollout", "credit", "--auto", "--steps", "100"]
    argv += ["--window", "0.5"]
    refused, _, _ = judged(registry, 0, shifted)
    monkeypatch.setattr(policy_cli, "rollout_backend", lambda settings: refused.backend)
    assert main(argv) == 3
    assert "action mix shifted: approve 10.0%" in capsys.readouterr().err
    allowed, _, _ = judged(registry, 0, shifted)
    monkeypatch.setattr(policy_cli, "rollout_backend", lambda settings: allowed.backend)
    assert main([*argv, "--max-action-shift", "0.5"]) == 0, capsys.readouterr().err
    assert champion(registry) == "2"


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (
            ["--auto", "--backend", "kserve"],
            "--auto on a cluster reads its gates from Prometheus: pass --prometheus",
        ),
        (
            ["--auto", "--max-action-shift", "1.5"],
            "--max-action-shift: Input should be less than or equal to 1",
        ),
        (["--auto", "--promote"], "--auto promotes or rolls back by itself"),
        (["--auto", "--steps", "10,half"], "--steps: comma-separated percentages"),
    ],
)
def test_auto_refuses_what_it_cannot_judge_in_one_line(argv, why, capsys) -> None:
    assert main(["policy", "rollout", "credit", *argv]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"riskserve policy rollout: error: {why}"), line

"""The outcomes pass of an experiment on a cluster: where a model's transformer runs
an experiment (an s3:// experimentUri) and the drift monitor has that model's late
labels, the chart schedules `python -m riskserve.monitoring outcomes` as a CronJob
pushing to the Pushgateway (where RiskserveChallengerWorse reads the verdict); the
kustomize component `components/outcomes-monitor` is the same CronJob. Both pass the
schema and pod checks every render passes, and the monitor's own parser accepts the
command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from riskserve.monitoring.cli import _with_subcommand, outcomes_options, parser

from tests.k8s.k8s_render import CONFIGURATIONS, MANIFESTS, Render, helm_template
from tests.k8s.k8s_render import kustomize as kustomize_render
from tests.k8s.test_drift_monitor import container, push_target
from tests.k8s.transformer_render import helm_refusal, passes_every_render_check

pytestmark = pytest.mark.k8s

VALUES = CONFIGURATIONS["drift-monitor"][0]
EXPERIMENT_URI = "s3://mlflow/experiments/credit.yaml"
WITH_EXPERIMENT = (
    "featureStore.enabled=true",
    f"models.credit.transformer.experimentUri={EXPERIMENT_URI}",
)


def helm(*sets: str) -> tuple[dict[str, Any], ...]:
    return helm_template(VALUES, *[a for s in sets for a in ("--set", s)])


def outcomes_cronjobs(documents: Any) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"].removeprefix("riskserve-"): d
        for d in documents
        if d["kind"] == "CronJob" and d["metadata"]["name"].endswith("outcomes-monitor")
    }


def test_the_chart_schedules_the_outcomes_pass_of_an_experiment() -> None:
    documents = helm(*WITH_EXPERIMENT)
    cronjobs = outcomes_cronjobs(documents)
    # credit runs the experiment; fraud has none
    assert set(cronjobs) == {"credit-outcomes-monitor"}
    cronjob = cronjobs["credit-outcomes-monitor"]
    assert cronjob["spec"]["schedule"] == "47 */6 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    args = container(cronjob)["args"]
    assert [push_target(a) for a in args] == [
        "python",
        "-m",
        "riskserve.monitoring",
        "outcomes",
        "credit",
        "--log=s3://mlflow/inference-log",
        f"--experiment={EXPERIMENT_URI}",
        "--labels=s3://mlflow/labels/credit.csv",
        "--since=30d",
        "--push=pushgateway",
    ]
    # the monitor's own parser takes the command as it stands
    options = outcomes_options(parser().parse_args(_with_subcommand(args[3:])))
    assert options.experiment == EXPERIMENT_URI and options.push
    # SeaweedFS admits the pass (the log, the labels, the experiment)
    (store,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("seaweedfs")
    ]
    assert "credit-outcomes-monitor" in str(store["spec"]["ingress"])
    rendered = Render("helm", "outcomes", documents)
    passes_every_render_check(rendered)


@pytest.mark.parametrize(
    "sets",
    [
        # no experiment
        ("featureStore.enabled=true",),
        # an experiment, but no labels to judge it by
        (*WITH_EXPERIMENT, "driftMonitor.labels.credit="),
        # switched off
        (*WITH_EXPERIMENT, "driftMonitor.outcomes.enabled=false"),
        # the experiment's transformer is not rendered (no feature store)
        (f"models.credit.transformer.experimentUri={EXPERIMENT_URI}",),
    ],
    ids=["no-experiment", "no-labels", "off", "no-transformer"],
)
def test_no_outcomes_cronjob_without_an_experiment_and_labels(
    sets: tuple[str, ...],
) -> None:
    assert not outcomes_cronjobs(helm(*sets))


def test_an_experiment_in_the_image_is_refused_in_one_line() -> None:
    stderr = helm_refusal(
        VALUES,
        "featureStore.enabled=true",
        "models.credit.transformer.experimentUri=/srv/experiment.yaml",
    )
    assert (
        "models.credit.transformer.experimentUri: /srv/experiment.yaml: the outcomes "
        "CronJob reads the experiment from S3"
    ) in stderr


def test_kustomizes_component_runs_the_charts_pass(tmp_path: Path) -> None:
    up = os.path.relpath(MANIFESTS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "namespace: riskserve\n"
        f"resources: [{up}/overlays/feature-store]\n"
        "components:\n"
        f"  - {up}/components/drift-monitor\n"
        f"  - {up}/components/outcomes-monitor\n"
        f"  - {up}/components/pushgateway\n"
    )
    documents = kustomize_render(tmp_path)
    cronjobs = outcomes_cronjobs(documents)
    assert set(cronjobs) == {"credit-outcomes-monitor"}
    from_helm = outcomes_cronjobs(helm(*WITH_EXPERIMENT))["credit-outcomes-monitor"]
    for key in ("args", "resources", "securityContext"):
        mine = container(cronjobs["credit-outcomes-monitor"])[key]
        theirs = container(from_helm)[key]
        if key == "args":
            mine, theirs = (
                [push_target(a) for a in mine],
                [push_target(a) for a in theirs],
            )
        assert mine == theirs, key
    assert (
        cronjobs["credit-outcomes-monitor"]["spec"]["schedule"]
        == from_helm["spec"]["schedule"]
    )
    (store,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "seaweedfs"
    ]
    assert "credit-outcomes-monitor" in str(store["spec"]["ingress"])
    passes_every_render_check(Render("kustomize", "outcomes", documents))

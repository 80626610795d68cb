"""`riskserve policy validate | apply | diff | status | rollout` (docs/policies.md).

A policy is versioned in the MLflow registry beside its model: the registered model
`<model>-policy`, one version per applied policy (the YAML as the version's artifact,
its sha256 and the model it decides for as tags), with `champion` and `challenger`
aliases, so a policy moves, canaries and rolls back as a model does, and
`models:/fraud-policy@champion` resolves to a storage URI the transformer reads without
MLflow (`policy_storage_uri`). `rollout` sets that URI as the transformer's setting with
the transformer's canaryTrafficPercent, through the backends of `riskserve rollout`:
a policy change is a new transformer revision, canaried, promoted and rolled back
with the predictor and its model untouched.

Exit codes: 0 done (or valid), 1 the policy is refused (every reason one line on
stderr), 2 a usage error, a refusal (an unapproved version's `--promote`) or MLflow
failed, 3 `--auto` rolled the canary back (one line on stderr names the gate).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from riskserve.governance.approvals import POLICY_SHA_TAG, record_policy_validation
from riskserve.governance.status import APPROVED, REJECTED, status_of, trail_of
from riskserve.rollout.controller import (
    KServeBackend,
    LocalBackend,
    PredictorStatus,
    Rollout,
    RolloutError,
    TransformerBackend,
    artifact_s3_uri,
    check_percent,
    check_promotable,
)
from riskserve.rollout.settings import RolloutSettings
from riskserve.rollout_cli import add_auto_options, auto_overrides, with_prometheus
from riskserve.serving.model_uri import (
    is_models_uri,
    parse_models_uri,
    resolve_version,
)
from riskserve.transformer.policy import (
    POLICY_FILE,
    Policy,
    PolicyFields,
    parse_policy,
    policy_fields,
)
from riskserve.transformer.policy_schema import PolicyError, Rule

if TYPE_CHECKING:
    from mlflow import MlflowClient

POLICY_SUFFIX = "-policy"
TAG_SHA256 = POLICY_SHA_TAG  # governance's name: an approval names this hash
TAG_MODEL = "policy_model"
TAG_MODEL_VERSION = "policy_model_version"
TAG_NAME = "policy_name"
TAG_BY = "applied_by"
KIND_TAG = "riskserve.kind"
DECISION_KINDS = {"card": "fraud", "customer": "credit"}
_V2_DATATYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "bool": "BOOL",
    "int64": "INT64",
    "int32": "INT32",
    "object": "BYTES",
    "str": "BYTES",
    "bytes": "BYTES",
}


class CommandError(RuntimeError):
    """A usage error or a failure of MLflow: exit 2."""


def registered_policy_name(model: str) -> str:
    return model + POLICY_SUFFIX


# -- the fields a policy may name ------------------------------------------------------


def transformer_fields(model: str, outputs: Sequence[tuple[str, str, list[int]]]):
    """The fields of the transformer in front of `model` (its kind's raw inputs and
    answered features) and the model's `outputs`; and the kind (fraud or credit)."""
    from riskserve.transformer.decisions import decision_for

    decision = decision_for(model)
    fields = policy_fields(model, decision.raw_inputs, decision.extra_outputs, outputs)
    return fields, DECISION_KINDS[decision.kind]


def onnx_outputs(path: Path) -> list[tuple[str, str, list[int]]]:
    """The outputs of an ONNX model file, as (name, v2 datatype, shape)."""
    import onnx
    from onnx import TensorProto

    graph = onnx.load(str(path), load_external_data=False).graph
    found = []
    for value in graph.output:
        tensor = value.type.tensor_type
        datatypes: dict[int, str] = {
            TensorProto.FLOAT: "FP32",
            TensorProto.DOUBLE: "FP64",
            TensorProto.BOOL: "BOOL",
            TensorProto.STRING: "BYTES",
            TensorProto.INT64: "INT64",
        }
        datatype = datatypes.get(tensor.elem_type, "UNSUPPORTED")
        shape = [
            d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim
        ]
        found.append((value.name, datatype, shape))
    return found


def signature_outputs(model_uri: str) -> list[tuple[str, str, list[int]]]:
    """A registered version's outputs from its MLflow signature."""
    import mlflow

    info = mlflow.models.get_model_info(model_uri)
    if info.signature is None or info.signature.outputs is None:
        raise CommandError(f"{model_uri} has no signature to check the policy against")
    found = []
    for spec in info.signature.outputs.inputs:
        dtype = getattr(spec, "type", None)
        name = getattr(dtype, "name", str(dtype))
        shape = [int(d) for d in (getattr(spec, "shape", None) or (-1,))]
        found.append((spec.name, _V2_DATATYPES.get(name, name), shape))
    return found


def check_policy(policy: Policy, fields: PolicyFields, kind: str, model: str) -> None:
    """Refuse a policy for another kind or model, or naming a field `fields` lacks."""
    problems = []
    if policy.kind != kind:
        problems.append(
            f"kind: {policy.kind!r}, but model {model} makes {kind} decisions"
        )
    if policy.document.model != model:
        problems.append(
            f"model: the policy is for {policy.document.model!r}, not {model!r}"
        )
    try:
        policy.check_fields(fields)
    except PolicyError as exc:
        problems.extend(str(exc).splitlines())
    if problems:
        raise PolicyError("\n".join(problems))


# -- the registry --------------------------------------------------------------------------


def _client(settings: RolloutSettings) -> MlflowClient:
    if not settings.mlflow_tracking_uri:
        raise CommandError(
            "set MLFLOW_TRACKING_URI: policies live in the MLflow registry"
        )
    return settings.mlflow_client()


def model_version(client: MlflowClient, reference: str) -> tuple[str, str]:
    """`NAME` (its champion, else its latest version) or `NAME/VERSION` -> (name,
    version)."""
    from mlflow.exceptions import MlflowException

    name, _, version = reference.partition("/")
    try:
        if version:
            return name, resolve_version(
                client, parse_models_uri(f"models:/{reference}")
            )
        try:
            return name, str(
                client.get_model_version_by_alias(name, "champion").version
            )
        except MlflowException:
            uri = parse_models_uri(f"models:/{name}/latest")
            return name, resolve_version(client, uri)
    except (MlflowException, LookupError, ValueError) as exc:
        raise CommandError(
            f"model {reference}: {getattr(exc, 'message', exc)}"
        ) from None


def read_policy_source(source: str, settings: RolloutSettings) -> Policy:
    """A policy from a file, or from the registry (`models:/fraud-policy@champion`)."""
    if not is_models_uri(source):
        path = Path(source)
        try:
            return parse_policy(path.read_bytes(), source)
        except OSError as exc:
            raise CommandError(f"{source}: {exc.strerror}") from None
    import mlflow

    client = _client(settings)
    # one small file: MLflow's download progress bars would only clutter the diff
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        reference = parse_models_uri(source)
        version = resolve_version(client, reference)
        download = client.get_model_version_download_uri(reference.name, version)
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=download.rstrip("/") + "/" + POLICY_FILE, dst_path=folder
            )
            return parse_policy(Path(local).read_bytes(), source)
    except PolicyError:
        raise
    except Exception as exc:  # MLflow's errors, a missing version or file
        raise CommandError(f"{source}: {getattr(exc, 'message', exc)}") from None


def policy_storage_uri(download_uri: str, artifacts_destination: str) -> str:
    """Where the transformer reads a registered policy version: the `s3://` location of
    its artifacts (as rollouts give KServe a model's), or the local folder when MLflow
    keeps artifacts on this machine."""
    if download_uri.startswith("file://"):
        return download_uri.removeprefix("file://")
    if download_uri.startswith("/"):
        return download_uri
    return artifact_s3_uri(download_uri, artifacts_destination)


def resolve_policy_uri(uri: str, settings: RolloutSettings) -> tuple[str, str]:
    """`models:/fraud-policy@champion` (or `/N`, `/latest`) -> (the version it points
    at now, the URI `load_policy` reads): what a rollout of a policy sets as the
    transformer's `policy_uri`, pinned to a version as model revisions are."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        reference = parse_models_uri(uri)
        version = resolve_version(client, reference)
        download = client.get_model_version_download_uri(reference.name, version)
    except (MlflowException, LookupError, ValueError) as exc:
        raise CommandError(f"{uri}: {getattr(exc, 'message', exc)}") from None
    return version, policy_storage_uri(download, settings.artifacts_destination)


def apply_policy(
    client: MlflowClient,
    policy: Policy,
    model: str,
    model_version: str,
    alias: str,
) -> tuple[str, bool]:
    """Register `policy` as a new version of `<model>-policy` and point `alias` at it;
    when the latest version holds the same document, only the alias moves. Returns
    (the version, whether it is new)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = registered_policy_name(model)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={KIND_TAG: "policy", TAG_MODEL: model},
            description=f"decision policies of model {model} (riskserve policy)",
        )
    versions = client.search_model_versions(f"name='{name}'")
    if versions:
        latest = max(versions, key=lambda v: int(v.version))
        if latest.tags.get(TAG_SHA256) == policy.sha256:
            # checked again just now: a version registered before approvals existed
            # becomes validated, so that it can be approved
            record_policy_validation(
                client,
                name,
                str(latest.version),
                policy.sha256,
                f"{model}/{model_version}",
                getpass.getuser(),
            )
            client.set_registered_model_alias(name, alias, latest.version)
            return str(latest.version), False
    mlflow.set_experiment(name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / POLICY_FILE
        path.write_bytes(policy.text)
        with mlflow.start_run(run_name=f"{policy.name}-{policy.version}") as run:
            mlflow.set_tags({TAG_SHA256: policy.sha256, TAG_MODEL: model})
            mlflow.log_artifact(str(path), artifact_path="policy")
    source = run.info.artifact_uri.rstrip("/") + "/policy"
    created = client.create_model_version(
        name,
        source,
        run_id=run.info.run_id,
        tags={
            TAG_SHA256: policy.sha256,
            TAG_NAME: policy.name,
            TAG_MODEL: model,
            TAG_MODEL_VERSION: model_version,
            TAG_BY: getpass.getuser(),
        },
        description=policy.document.description or None,
    )
    # `_validated` checked it against the model before it was registered: a policy
    # version is validated from its first moment, and needs only an approval.
    record_policy_validation(
        client,
        name,
        str(created.version),
        policy.sha256,
        f"{model}/{model_version}",
        getpass.getuser(),
    )
    client.set_registered_model_alias(name, alias, created.version)
    return str(created.version), True


# -- rollout: a policy version as a transformer revision -------------------------------

POLICY_URI_ENV = "RISKSERVE_TRANSFORMER_POLICY_URI"
POLICY_VERSION_ANNOTATION = "riskserve.io/policy-version"
# What `--rollback` returns to once a policy was promoted (no canary left to drop).
PREVIOUS_VERSION_ANNOTATION = "riskserve.io/policy-previous-version"
PREVIOUS_URI_ANNOTATION = "riskserve.io/policy-previous-uri"


def transformer_policy_uri(isvc: dict) -> str:
    """The policy URI in an InferenceService's transformer container ("" for none)."""
    containers = ((isvc.get("spec") or {}).get("transformer") or {}).get(
        "containers"
    ) or [{}]
    for entry in containers[0].get("env") or []:
        if entry.get("name") == POLICY_URI_ENV:
            return str(entry.get("value") or "")
    return ""


class PolicyRollout:
    """`riskserve policy rollout`: start, promote, roll back a policy version on a
    transformer, through a rollout backend (the local platform or KServe)."""

    def __init__(
        self, backend: TransformerBackend, settings: RolloutSettings, say=print
    ) -> None:
        self.backend, self.settings, self.say = backend, settings, say
        self.last_failure = ""  # `auto`: the gate that rolled the canary back

    def _isvc(self, isvc: str) -> dict:
        found = self.backend.get(isvc)  # an unknown InferenceService fails here
        if not (found.get("spec") or {}).get("transformer"):
            raise CommandError(
                f"{isvc} has no spec.transformer: a policy is applied by the "
                "transformer (docs/policies.md)"
            )
        return found

    def start(self, model: str, alias: str, percent: int, isvc: str) -> str:
        check_percent(percent)
        current = self._isvc(isvc)
        name = registered_policy_name(model)
        version, uri = resolve_policy_uri(f"models:/{name}@{alias}", self.settings)
        annotations = dict((current.get("metadata") or {}).get("annotations") or {})
        serving = transformer_policy_uri(current)
        if serving == uri:
            raise CommandError(
                f"{isvc}: {name} version {version} ({alias}) is the policy it serves "
                "already"
            )
        previous = annotations.get(POLICY_VERSION_ANNOTATION) or self._version_of(
            name, serving
        )
        self.backend.patch_transformer(
            isvc,
            {POLICY_URI_ENV: uri},
            percent,
            {
                POLICY_VERSION_ANNOTATION: f"{name}/{version}",
                PREVIOUS_VERSION_ANNOTATION: previous,
                PREVIOUS_URI_ANNOTATION: serving,  # "": no policy
            },
        )
        message = (
            f"{isvc}: new transformer revision for {name} version {version} "
            f"({alias}) with {percent}% of traffic; the predictor is unchanged ({uri})"
        )
        self.say(message)
        return message

    def _version_of(self, name: str, uri: str) -> str | None:
        """`NAME/N` of the registered version stored at `uri` (the policy a
        transformer serves), or None."""
        if not uri:
            return None
        client = _client(self.settings)
        for v in client.search_model_versions(f"name='{name}'"):
            where = policy_storage_uri(
                client.get_model_version_download_uri(name, v.version),
                self.settings.artifacts_destination,
            )
            if where.rstrip("/") == uri.rstrip("/"):
                return f"{name}/{v.version}"
        return None

    def promote(self, isvc: str) -> str:
        current = self._isvc(isvc)
        before = PredictorStatus.from_isvc(current, "transformer")
        if before.canary is None:
            raise CommandError(
                f"{isvc}: no transformer canary to promote ({before.split()})"
            )
        version = before.annotations.get(POLICY_VERSION_ANNOTATION)
        # The approval gate, as a model's: the policy version the canary serves
        check_promotable(
            self.settings, version, f"{isvc}'s transformer canary {before.canary}"
        )
        self.backend.patch_transformer(isvc, {}, None, {})
        message = f"{isvc}: promoted {before.canary}; it takes 100% once ready"
        if version:
            name, number = version.rsplit("/", 1)
            _client(self.settings).set_registered_model_alias(name, "champion", number)
            message += f"; MLflow alias champion -> {name} v{number}"
        self.say(message)
        return message

    def rollback(self, isvc: str, why: str = "") -> str:
        """A canary: all traffic back to the rolled-out revision (canary 0, as
        `riskserve rollout rollback`); a promoted policy: the previous policy URI as
        a new revision, and the champion alias back to its version."""
        current = self._isvc(isvc)
        before = PredictorStatus.from_isvc(current, "transformer")
        if before.canary is not None:
            self.backend.patch_transformer(isvc, {}, 0, {})
            message = (
                f"{isvc}: rolled the transformer back to {before.latest_rolledout}"
                + (f" ({why})" if why else "")
                + "; champion alias unchanged"
            )
            self.say(message)
            return message
        previous_uri = before.annotations.get(PREVIOUS_URI_ANNOTATION)
        previous = before.annotations.get(PREVIOUS_VERSION_ANNOTATION)
        if previous_uri is None:
            raise CommandError(
                f"{isvc}: no transformer canary and no previous policy recorded "
                f"({PREVIOUS_URI_ANNOTATION}) to roll back to"
            )
        self.backend.patch_transformer(
            isvc,
            {POLICY_URI_ENV: previous_uri},
            None,
            {
                POLICY_VERSION_ANNOTATION: previous,
                PREVIOUS_VERSION_ANNOTATION: None,
                PREVIOUS_URI_ANNOTATION: None,
            },
        )
        message = (
            f"{isvc}: rolled the promoted policy back: a new transformer revision for "
            f"{previous or previous_uri or 'no policy'} takes 100% once ready"
        )
        if previous:
            name, number = previous.rsplit("/", 1)
            _client(self.settings).set_registered_model_alias(name, "champion", number)
            message += f"; MLflow alias champion -> {name} v{number}"
        self.say(message)
        return message

    def auto(
        self, model: str, alias: str, steps: list[int], isvc: str, clock=None
    ) -> bool:
        """`--auto`: the policy version `alias` names as a transformer canary at
        `steps[0]`, each step judged by the model rollout's gates on the
        transformer's revisions (errors, p99 against the stable revision's), then
        promoted, or rolled back naming the gate that broke. True when promoted."""
        judge = Rollout(
            self.backend, self.settings, self.say, clock, component="transformer"
        )
        judge.check_auto(steps)
        self._isvc(isvc)
        name = registered_policy_name(model)
        version, _ = resolve_policy_uri(f"models:/{name}@{alias}", self.settings)
        # The approval gate before any traffic moves: a canary that could not be
        # promoted is not worth judging.
        check_promotable(self.settings, f"{name}/{version}", f"{name}@{alias}")
        self.start(model, alias, steps[0], isvc)
        self.last_failure = ""

        def rollback(isvc: str, why: str) -> None:
            self.last_failure = why
            self.rollback(isvc, why)

        return judge.judge_steps(isvc, steps, self.promote, rollback)


def rollout_backend(settings: RolloutSettings) -> TransformerBackend:
    """The backend of the settings, its automatic gates read from Prometheus when
    they name one (on a cluster `--auto` needs it)."""
    backend: TransformerBackend
    if settings.backend == "kserve":
        backend = KServeBackend(settings.namespace)
    else:
        from riskserve.localplatform.settings import PlatformSettings

        backend = LocalBackend(PlatformSettings())
    return with_prometheus(backend, settings)


# -- diff ----------------------------------------------------------------------------------


def _when(rule: Rule) -> str:
    parts = []
    for condition in rule.when:
        tests = ", ".join(
            f"{op} {value!r}" for op, value in condition.operators().items()
        )
        parts.append(f"{condition.field} {tests}")
    return " and ".join(parts)


def _describe(rule: Rule) -> str:
    return f"when {_when(rule)} -> {rule.action} ({rule.reason})"


def diff_policies(old: Policy, new: Policy) -> list[str]:
    """What changed from `old` to `new`, one readable line each (empty: the same
    decisions; descriptions and comments are not compared)."""
    lines = []
    old_rules = {r.name: (i, r) for i, r in enumerate(old.document.rules)}
    new_rules = {r.name: (i, r) for i, r in enumerate(new.document.rules)}
    for key in ("name", "kind", "model"):
        a, b = getattr(old.document, key), getattr(new.document, key)
        if a != b:
            lines.append(f"~ {key}: {a} -> {b}")
    for name, (i, rule) in old_rules.items():
        if name not in new_rules:
            lines.append(f"- rule {name} (was #{i + 1}): {_describe(rule)}")
    for name, (i, rule) in new_rules.items():
        if name not in old_rules:
            lines.append(f"+ rule {name} (#{i + 1}): {_describe(rule)}")
            continue
        j, before = old_rules[name]
        if _when(before) != _when(rule):
            lines.append(f"~ rule {name}: when {_when(before)} -> when {_when(rule)}")
        if (before.action, before.reason) != (rule.action, rule.reason):
            lines.append(
                f"~ rule {name}: {before.action} ({before.reason}) -> "
                f"{rule.action} ({rule.reason})"
            )
    kept_old = [n for n in old_rules if n in new_rules]
    kept_new = [n for n in new_rules if n in old_rules]
    if kept_old != kept_new:
        lines.append(f"~ order: {', '.join(kept_old)} -> {', '.join(kept_new)}")
    a, b = old.document.default, new.document.default
    if (a.action, a.reason) != (b.action, b.reason):
        lines.append(f"~ default: {a.action} ({a.reason}) -> {b.action} ({b.reason})")
    return lines


# -- the command ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskserve policy")
    actions = parser.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="check a policy against its model")
    validate.add_argument("file")
    target = validate.add_mutually_exclusive_group()
    target.add_argument(
        "--model",
        help="NAME or NAME/VERSION in the registry (default: the policy's model, "
        "its champion, else its latest version)",
    )
    target.add_argument("--onnx", help="check against this ONNX file instead")
    apply = actions.add_parser("apply", help="register the policy as a new version")
    apply.add_argument("file")
    apply.add_argument("--model", help="NAME or NAME/VERSION (as validate)")
    apply.add_argument(
        "--alias", default="challenger", help="alias of the new version (challenger)"
    )
    diff = actions.add_parser("diff", help="rules added, removed or changed")
    diff.add_argument("old", help="a file or models:/NAME-policy@ALIAS (or /N)")
    diff.add_argument("new", help="a file or models:/NAME-policy@ALIAS (or /N)")
    diff.add_argument(
        "--log",
        metavar="URI",
        help="also replay the decisions the transformer recorded in this inference "
        "log (a folder or s3://; default RISKSERVE_MONITOR_LOG_URI when --since is "
        "given) under both policies: the shift in actions the new one makes",
    )
    diff.add_argument(
        "--since", help="with --log: from when (an age, 7d, or an ISO time; 7d)"
    )
    replay_target = diff.add_mutually_exclusive_group()
    replay_target.add_argument(
        "--model",
        help="with --log: NAME or NAME/VERSION the policies are checked against "
        "(default: the new policy's model, its champion)",
    )
    replay_target.add_argument(
        "--onnx", help="with --log: check the policies against this ONNX file"
    )
    status = actions.add_parser("status", help="versions, aliases, hashes, who/when")
    status.add_argument("--model", required=True, help="the model, e.g. fraud")
    rollout = actions.add_parser(
        "rollout", help="canary a policy version on the transformer, promote, roll back"
    )
    rollout.add_argument("model", help="the model, e.g. credit (policy: credit-policy)")
    step = rollout.add_mutually_exclusive_group()
    step.add_argument(
        "--promote",
        action="store_true",
        help="the canary takes 100%%; champion moves (the version must be approved: "
        "riskserve approve MODEL-policy N)",
    )
    step.add_argument(
        "--rollback", action="store_true", help="back to the previous policy"
    )
    add_auto_options(rollout)
    rollout.add_argument(
        "--max-action-shift",
        type=float,
        metavar="SHARE",
        help="with --auto: the largest change of any action's share of rows on the "
        "canary against the stable policy, beyond sampling error (0.10: ten points); "
        "set it above the shift the new policy is meant to make",
    )
    rollout.add_argument(
        "--alias", default="challenger", help="the version to roll out (challenger)"
    )
    rollout.add_argument(
        "--percent", type=int, default=10, help="its share of traffic (10)"
    )
    rollout.add_argument("--isvc", help="the InferenceService (default: the model)")
    rollout.add_argument(
        "--backend", choices=["local", "kserve"], help="default: local"
    )
    rollout.add_argument("--namespace", help="kserve backend: the namespace")
    return parser


def _validated(
    path: str, model_arg: str | None, settings: RolloutSettings
) -> tuple[Policy, str, str, MlflowClient]:
    policy = read_policy_source(path, settings)
    client = _client(settings)
    name, version = model_version(client, model_arg or policy.document.model)
    fields, kind = transformer_fields(
        name, signature_outputs(f"models:/{name}/{version}")
    )
    check_policy(policy, fields, kind, name)
    return policy, name, version, client


def _replayed(
    args: argparse.Namespace, old: Policy, new: Policy, settings: RolloutSettings
) -> list[str]:
    """`diff --log`: both policies checked against the model, then the recorded
    decisions replayed under each (riskserve.policy_replay)."""
    import datetime as dt

    from riskserve.monitoring.log_reader import (
        BadInput,
        LogWindow,
        open_log,
        parse_time,
    )
    from riskserve.monitoring.settings import MonitorSettings
    from riskserve.policy_replay import replay

    model = new.document.model
    if args.onnx:
        fields, kind = transformer_fields(model, onnx_outputs(Path(args.onnx)))
    else:
        client = _client(settings)
        name, version = model_version(client, args.model or model)
        fields, kind = transformer_fields(
            name, signature_outputs(f"models:/{name}/{version}")
        )
    for policy in (old, new):
        check_policy(policy, fields, kind, model)
    monitor = MonitorSettings()
    uri = args.log or monitor.log_uri
    if not uri:
        raise CommandError(
            "--since replays the inference log: give --log URI (or set "
            "RISKSERVE_MONITOR_LOG_URI)"
        )
    now = dt.datetime.now(dt.UTC)
    try:
        window = LogWindow(parse_time(args.since or "7d", now), now)
        return replay(open_log(uri, monitor), model, window, old, new).lines(model)
    except BadInput as exc:
        raise CommandError(str(exc)) from None


def _status(settings: RolloutSettings, model: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = registered_policy_name(model)
    try:
        registered = client.get_registered_model(name)
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        raise CommandError(f"{name}: {exc.message}") from None
    aliases: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    lines = [f"{name}: {len(versions)} version(s)"]
    for v in sorted(versions, key=lambda v: -int(v.version)):
        when = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(v.creation_timestamp / 1000)
        )
        uri = policy_storage_uri(
            client.get_model_version_download_uri(name, v.version),
            settings.artifacts_destination,
        )
        tags = dict(v.tags)
        # who approved (or rejected) it, when: `applied_by` says who validated it
        decided = [e for e in trail_of(tags) if e.status in (APPROVED, REJECTED)]
        approval = status_of(tags) + (
            f" by {decided[-1].by} at {decided[-1].at}" if decided else ""
        )
        lines.append(
            f"  version {v.version}"
            f" [{', '.join(sorted(aliases.get(str(v.version), []))) or '-'}]"
            f" {approval}"
            f" sha256 {v.tags.get(TAG_SHA256, '?')[:12]}"
            f" {v.tags.get(TAG_NAME, '?')}"
            f" for {model}/{v.tags.get(TAG_MODEL_VERSION, '?')}"
            f" by {v.tags.get(TAG_BY, '?')} at {when}  {uri}"
        )
    return lines


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    for key in ("backend", "namespace"):
        if getattr(args, key, None):
            overrides[key] = getattr(args, key)
    if args.action == "rollout":
        overrides.update(auto_overrides(args))
        if args.max_action_shift is not None:
            overrides["max_action_shift"] = args.max_action_shift
    prefix = f"riskserve policy {args.action}"
    try:
        settings = RolloutSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = (
            "--max-action-shift"
            if first["loc"] == ("max_action_shift",)
            else (".".join(str(x) for x in first["loc"]))
        )
        print(f"{prefix}: error: {where}: {first['msg']}", file=sys.stderr)
        return 2
    try:
        if args.action == "validate":
            if args.onnx:
                policy = read_policy_source(args.file, settings)
                model = policy.document.model
                fields, kind = transformer_fields(model, onnx_outputs(Path(args.onnx)))
                check_policy(policy, fields, kind, model)
                against = args.onnx
            else:
                policy, model, version, _ = _validated(args.file, args.model, settings)
                against = f"{model}/{version}"
            print(
                f"{args.file}: policy {policy.name} ({policy.version}) is valid for "
                f"{against}: {len(policy.document.rules)} rules over "
                f"{', '.join(policy.fields) or 'no fields'}"
            )
        elif args.action == "apply":
            policy, model, version, client = _validated(args.file, args.model, settings)
            number, new = apply_policy(client, policy, model, version, args.alias)
            name = registered_policy_name(model)
            what = "registered" if new else "unchanged, already"
            print(
                f"{name}: {what} version {number} ({policy.name}, sha256 "
                f"{policy.version}); alias {args.alias} -> {number}"
            )
        elif args.action == "diff":
            old = read_policy_source(args.old, settings)
            new_policy = read_policy_source(args.new, settings)
            lines = diff_policies(old, new_policy)
            print("\n".join(lines) if lines else "no change in rules or defaults")
            if args.log or args.since:
                print("\n".join(_replayed(args, old, new_policy, settings)))
        elif args.action == "rollout":
            rollout = PolicyRollout(rollout_backend(settings), settings)
            isvc = args.isvc or args.model
            if args.auto and (args.promote or args.rollback):
                raise CommandError("--auto promotes or rolls back by itself")
            if args.promote:
                rollout.promote(isvc)
            elif args.rollback:
                rollout.rollback(isvc)
            elif args.auto:
                try:
                    steps = settings.step_percents()
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                if not rollout.auto(args.model, args.alias, steps, isvc):
                    print(
                        f"{prefix}: rolled back: {rollout.last_failure}",
                        file=sys.stderr,
                    )
                    return 3
            else:
                rollout.start(args.model, args.alias, args.percent, isvc)
        else:
            print("\n".join(_status(settings, args.model)))
    except PolicyError as exc:
        where = f"{args.file}: " if getattr(args, "file", None) else ""
        for line in str(exc).splitlines():
            print(f"{prefix}: {where}{line}", file=sys.stderr)
        return 1
    except (CommandError, RolloutError) as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    return 0

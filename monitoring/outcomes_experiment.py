"""What the outcomes pass needs from an experiment's YAML: its name, its arms (which
is the champion: the first live one, as the transformer's holdout takes it; which
are shadows) and its economics. The transformer owns the
experiment's full schema; the monitor may not import it (tests/test_import_arrows.py),
so it reads these keys alone, strictly, and leaves the rest of the document alone.

    name: credit-cutoff-2026-12
    arms:
      - {name: champion, ...}     # the first live arm is the champion
      - {name: challenger, ...}
      - {name: shadow-v7, shadow: true, ...}
    economics:
      gain_rate: 0.04             # earned on a good decision's amount
      loss_given_default: 0.9     # lost on a bad decision's amount
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from riskserve.monitoring.log_reader import BadInput


class Economics(BaseModel):
    """Money per decision, as a share of the decision's amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_rate: Annotated[float, Field(ge=0, le=10)]
    """Earned on an approved (allowed) good decision: fee, interest or interchange."""
    loss_given_default: Annotated[float, Field(ge=0, le=10)]
    """Lost on an approved bad one (a default, a chargeback), unless its label says
    the loss."""


class ArmKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    shadow: bool = False


class ExperimentKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=128)]
    arms: list[ArmKeys] = Field(default_factory=list)
    economics: Economics | None = None

    @property
    def champion_arm(self) -> str | None:
        live = [a.name for a in self.arms if not a.shadow]
        return live[0] if live else None


def is_experiment_file(source: str) -> bool:
    """An experiment's YAML (a local file or an s3:// URI), not its recorded name."""
    return source.startswith("s3://") or Path(source).is_file()


def read_experiment(path: str | Path, settings: Any = None) -> ExperimentKeys:
    """The keys above from an experiment's YAML, a local file or an s3:// URI (the
    transformer's own RISKSERVE_TRANSFORMER_EXPERIMENT_URI, read with `settings`'
    S3 client by the chart's CronJob); BadInput naming the field."""
    try:
        if str(path).startswith("s3://"):
            bucket, _, key = str(path).removeprefix("s3://").partition("/")
            body = settings.s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            text = body.read().decode()
        else:
            text = Path(path).read_text()
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not a readable experiment ({exc})") from None
    except Exception as exc:  # OSError, botocore's errors: name the file, no trace
        raise BadInput(f"{path}: cannot read the experiment ({exc})") from None
    if not isinstance(document, dict):
        raise BadInput(f"{path}: an experiment is a mapping with name, arms, economics")
    try:
        return ExperimentKeys.model_validate(document)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(map(str, problem["loc"]))
        raise BadInput(f"{path}: {where}: {problem['msg']}") from None


def economics_of(
    experiment: ExperimentKeys | None,
    gain_rate: float | None,
    loss_given_default: float | None,
) -> Economics:
    """The command line's figures over the file's; BadInput when one is in neither."""
    base = experiment.economics if experiment else None
    values = {
        "gain_rate": gain_rate if gain_rate is not None else base and base.gain_rate,
        "loss_given_default": loss_given_default
        if loss_given_default is not None
        else base and base.loss_given_default,
    }
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BadInput(
            "no "
            + " and no ".join(missing)
            + ": set economics in the experiment file or give --"
            + " and --".join(m.replace("_", "-") for m in missing)
        )
    try:
        return Economics.model_validate(values)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise BadInput(f"{problem['loc'][0]}: {problem['msg']}") from None

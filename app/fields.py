"""The input fields of a model: names and datatypes from its v2 metadata, and for the
features the shared spec knows, their kind, range, categories and whether a value may
be missing. A retrained model with other inputs gets other fields, with no code change.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from riskserve.app.v2_client import ModelMetadata, TensorMetadata
from riskserve.model.specs import MERCHANT_GROUPS, ModelSpec

MISSING = "missing"
NOW = "now"
TIMESTAMP_KIND = "timestamp"
# What a transformer's raw fields may hold, beyond their datatype: the transformer
# refuses the rest too, but the form says so before a request is sent.
RAW_RANGES: dict[str, tuple[float | None, float | None]] = {
    "amount": (0.0, None),
    "basket_amount": (0.0, None),
    "merchant_latitude": (-90.0, 90.0),
    "merchant_longitude": (-180.0, 180.0),
}
RAW_CATEGORIES: dict[str, tuple[str, ...]] = {"merchant_group": MERCHANT_GROUPS}


@dataclass(frozen=True)
class Field:
    name: str
    datatype: str
    kind: str = "numeric"
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def parse(self, raw: object) -> float | int | str | None:
        """The value to send for `raw` (form or CSV text); ValueError in plain words."""
        if isinstance(raw, str):
            raw = raw.strip()
        if self.kind == TIMESTAMP_KIND:
            return parse_timestamp_us(self.name, raw)
        empty = raw is None or raw == "" or raw == MISSING
        if isinstance(raw, float) and math.isnan(raw):
            empty = True
        if self.datatype == "BYTES":
            if empty:
                raise ValueError(f"{self.name} is empty")
            text = str(raw)
            if self.categories and text not in self.categories:
                raise ValueError(
                    f"{self.name} {text!r} is not one of: {', '.join(self.categories)}"
                )
            return text
        if empty:
            if self.nullable:
                return None
            raise ValueError(f"{self.name} is empty and may not be missing")
        if isinstance(raw, bool):
            number = float(raw)
        else:
            try:
                number = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{self.name} {raw!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{self.name} {raw!r} is not a finite number")
        if self.kind == "binary" and number not in (0.0, 1.0):
            raise ValueError(f"{self.name} must be 0 or 1, got {raw!r}")
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"{self.name} {number:g} is below {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"{self.name} {number:g} is above {self.maximum:g}")
        return number


def parse_timestamp_us(name: str, raw: object) -> int:
    """Microseconds since the epoch, UTC, of a form's time: empty or "now" is now, a
    date and time without a zone is UTC."""
    if raw is None or raw == "" or raw == NOW:
        moment = dt.datetime.now(dt.UTC)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(raw))
        except ValueError:
            raise ValueError(
                f"{name} {raw!r} is not a date and time (e.g. 2026-01-31 14:05:00, "
                "UTC), nor empty for now"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (moment - epoch) // dt.timedelta(microseconds=1)


def format_timestamp_us(timestamp_us: int) -> str:
    """The form's text for a time in microseconds (UTC, to the second)."""
    moment = dt.datetime.fromtimestamp(timestamp_us / 1_000_000, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def fields_from_metadata(
    metadata: ModelMetadata, spec: ModelSpec | None
) -> list[Field]:
    """One field per input the model declares, in its order: the model's features,
    or for a transformer, the raw event's fields."""
    if metadata.takes_raw_events:
        return [_raw_field(tensor, metadata) for tensor in metadata.inputs]
    return [_field(tensor, spec) for tensor in metadata.inputs]


def _raw_field(tensor: TensorMetadata, metadata: ModelMetadata) -> Field:
    what = metadata.raw_inputs.get(tensor.name, "")
    if tensor.name == "timestamp":
        return Field(
            tensor.name,
            tensor.datatype,
            TIMESTAMP_KIND,
            "UTC, e.g. 2026-01-31 14:05:00; empty or 'now' for now",
        )
    if tensor.datatype == "BYTES":
        categories = RAW_CATEGORIES.get(tensor.name, ())
        kind = "categorical" if categories else "id"
        return Field(tensor.name, tensor.datatype, kind, what, categories=categories)
    if tensor.datatype == "BOOL":
        return Field(tensor.name, tensor.datatype, "binary", "")
    if tensor.name in RAW_RANGES:
        # The form shows the range itself ("degrees [-90 … 90]"), so the metadata's
        # wording of it ("degrees, -90 to 90") is left out.
        low, high = RAW_RANGES[tensor.name]
        return Field(
            tensor.name, tensor.datatype, "numeric", what.split(",")[0], low, high
        )
    return Field(tensor.name, tensor.datatype, "numeric", what)


def fields_from_spec(spec: ModelSpec) -> list[Field]:
    """The fields of the shared spec, for when the model's metadata cannot be read."""
    return [
        _field(TensorMetadata(f.name, f.tensor_datatype, (-1, 1)), spec)
        for f in spec.features
    ]


def _field(tensor: TensorMetadata, spec: ModelSpec | None) -> Field:
    known = None
    if spec is not None:
        try:
            known = spec.feature(tensor.name)
        except KeyError:
            known = None
    if known is None:
        kind = "categorical" if tensor.datatype == "BYTES" else "numeric"
        # What the spec does not describe, the model imputes or rejects itself.
        return Field(tensor.name, tensor.datatype, kind, nullable=True)
    return Field(
        name=tensor.name,
        datatype=tensor.datatype,
        kind=known.kind,
        description=known.description,
        minimum=known.minimum,
        maximum=known.maximum,
        categories=known.categories,
        nullable=known.nullable,
    )

"""The feature specs of the two risk models: the contract every component shares.

A spec names each feature, its kind and its valid range or categories, the target column
and, for the ONNX graph, the tensor type each feature travels as (FP32 or BYTES).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FeatureKind = Literal["numeric", "binary", "ordinal", "categorical"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    reason: str = ""
    """Adverse-action reason text, with `{value}` where the applicant's value (or its
    bin) goes, e.g. `worst status in the last 3 months is {value}`. Empty: generated
    from the description or the name (`reason_template`)."""

    @property
    def reason_template(self) -> str:
        """The reason text: the spec's own, else `<description or name> is {value}`
        (what features inferred from an arbitrary CSV get)."""
        if self.reason:
            return self.reason
        subject = self.description or self.name.replace("_", " ")
        return f"{subject} is {{value}}"

    @property
    def tensor_datatype(self) -> str:
        """The v2 datatype this feature is sent as: BYTES for strings, else FP32."""
        return "BYTES" if self.kind == "categorical" else "FP32"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    target: str
    features: tuple[Feature, ...]
    id_column: str | None = None
    outputs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind != "categorical"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no feature {name!r}")


# The output tensors of the ONNX contract, by name; every producer and reader of an
# output takes its name from here.
FRAUD_PROBABILITY = "fraud_probability"
IS_FRAUD = "is_fraud"
DEFAULT_PROBABILITY = "default_probability"
CREDIT_SCORE = "credit_score"
APPROVED = "approved"
REASON_CODES = "reason_codes"
PROBABILITY_OUTPUT: dict[str, str] = {
    "fraud": FRAUD_PROBABILITY,
    "credit": DEFAULT_PROBABILITY,
}
"""The probability output of each model kind."""

FRAUD_OUTPUTS = ((FRAUD_PROBABILITY, "FP32"), (IS_FRAUD, "BOOL"))
CREDIT_OUTPUTS = (
    (DEFAULT_PROBABILITY, "FP32"),
    (CREDIT_SCORE, "FP32"),
    (APPROVED, "BOOL"),
)
SCORE_OUTPUTS = (FRAUD_PROBABILITY, DEFAULT_PROBABILITY, CREDIT_SCORE)
"""The outputs whose distribution the reference profiles keep and the monitor compares."""

FRAUD = ModelSpec(
    name="fraud",
    target="fraud",
    features=(
        Feature("distance_from_home", "numeric", "km from the cardholder's home", 0.0),
        Feature(
            "distance_from_last_transaction",
            "numeric",
            "km from the previous transaction",
            0.0,
        ),
        Feature(
            "ratio_to_median_purchase_price",
            "numeric",
            "amount / the cardholder's median purchase",
            0.0,
        ),
        Feature("repeat_retailer", "binary", "bought here before", 0, 1),
        Feature("used_chip", "binary", "card chip used", 0, 1),
        Feature("used_pin_number", "binary", "PIN entered", 0, 1),
        Feature("online_order", "binary", "an online order", 0, 1),
    ),
    outputs=FRAUD_OUTPUTS,
)

MERCHANT_GROUPS = (
    "Clothing & Shoes",
    "Intangible products",
    "Food & Beverage",
    "Entertainment",
    "Erotic Material",
    "Leisure, Sport & Hobby",
    "Home & Garden",
    "Electronics",
    "Children Products",
    "Health & Beauty",
    "Automotive Products",
)

_CREDIT_NUMERIC = (
    ("max_paid_inv_0_24m", "largest paid invoice in 24 months"),
    ("avg_payment_span_0_12m", "average days to pay in 12 months"),
    ("sum_capital_paid_account_0_12m", "capital paid in the last 12 months"),
    ("sum_capital_paid_account_12_24m", "capital paid 12 to 24 months ago"),
    ("time_hours", "hour of day of the purchase"),
    ("recovery_debt", "debt in recovery"),
    ("num_active_div_by_paid_inv_0_12m", "active / paid invoices in 12 months"),
    ("sum_paid_inv_0_12m", "sum of paid invoices in 12 months"),
    ("account_days_in_rem_12_24m", "days in reminder 12 to 24 months ago"),
    ("num_arch_ok_0_12m", "archived invoices paid on time in 12 months"),
    ("account_amount_added_12_24m", "amount added 12 to 24 months ago"),
)
# (name, adverse-action reason text: `{value}` is the applicant's status or its bin)
_CREDIT_STATUS = (
    ("account_status", "current account status is {value}"),
    ("account_worst_status_0_3m", "worst status in the last 3 months is {value}"),
    ("account_worst_status_3_6m", "worst status 3 to 6 months ago is {value}"),
    ("account_worst_status_6_12m", "worst status 6 to 12 months ago is {value}"),
    ("account_worst_status_12_24m", "worst status 12 to 24 months ago is {value}"),
    ("status_last_archived_0_24m", "status of the last archived invoice is {value}"),
    (
        "status_2nd_last_archived_0_24m",
        "status of the 2nd last archived invoice is {value}",
    ),
    (
        "status_3rd_last_archived_0_24m",
        "status of the 3rd last archived invoice is {value}",
    ),
    (
        "status_max_archived_0_6_months",
        "worst archived status in 6 months is {value}",
    ),
    (
        "status_max_archived_0_12_months",
        "worst archived status in 12 months is {value}",
    ),
    (
        "status_max_archived_0_24_months",
        "worst archived status in 24 months is {value}",
    ),
)

CREDIT = ModelSpec(
    name="credit",
    target="default",
    id_column="uuid",
    features=(
        *(
            Feature(
                name,
                "numeric",
                desc,
                0.0 if name != "time_hours" else 0.0,
                24.0 if name == "time_hours" else None,
                nullable=True,
                reason=f"{desc} is {{value}}",
            )
            for name, desc in _CREDIT_NUMERIC
        ),
        *(
            Feature(
                name,
                "ordinal",
                "status code 1 (good) to 4 (bad)",
                1,
                4,
                nullable=True,
                reason=reason,
            )
            for name, reason in _CREDIT_STATUS
        ),
        Feature(
            "has_paid",
            "binary",
            "has paid before",
            0,
            1,
            reason="has paid before: {value}",
        ),
        Feature(
            "merchant_group",
            "categorical",
            "merchant group of the purchase",
            categories=MERCHANT_GROUPS,
            reason="merchant group is {value}",
        ),
    ),
    outputs=CREDIT_OUTPUTS,
)

SPECS: dict[str, ModelSpec] = {"fraud": FRAUD, "credit": CREDIT}


def get_spec(kind: str) -> ModelSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise KeyError(
            f"unknown model kind {kind!r}; expected one of {sorted(SPECS)}"
        ) from None

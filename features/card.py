"""A card's state and the fraud features, as plain Python over plain values.

One definition, three callers: the on-demand feature view (per request online, per
row in a training set), the push update after a scored transaction, and the state log
that backs the push source offline. Each function is a few microseconds of Python on
floats, lists and ints, so a transformer can call it per request.

The fraud features (`model/specs.py` FRAUD, DATA.md "Raw events"):

- `distance_from_home`: haversine (km) from the card's home to the merchant;
- `distance_from_last_transaction`: haversine (km) from the card's previous
  transaction's merchant to this one;
- `ratio_to_median_purchase_price`: amount / the card's median purchase (the median of
  its last `MEDIAN_WINDOW` amounts);
- `repeat_retailer`: 1 if the card has bought from this merchant before (among its last
  `MAX_MERCHANTS` distinct merchants), else 0;
- `used_chip`, `used_pin_number`, `online_order`: the request's `chip`, `pin` and
  `online` flags.

With no history the defaults are: distance from the last transaction 0 (nothing to
move from), ratio 1 (the amount is the only one known), repeat 0; with no home in the
register, distance from home 0. `card_transactions` (previous transactions known) and
`card_registered` say which applied.

Velocity: the count and sum of the card's previous transactions in the hour and the 24
hours before this one (the current one excluded), from the state's recent list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
MEDIAN_WINDOW = 100  # the card's median purchase: over its last 100 amounts
MAX_MERCHANTS = 256  # merchants remembered per card, the most recent first to stay
MAX_RECENT = 512  # transactions kept for the 24-hour window (card testing bursts)
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US

# What the on-demand view returns, in order: the model's seven, then the context.
FRAUD_FEATURES = (
    "distance_from_home",
    "distance_from_last_transaction",
    "ratio_to_median_purchase_price",
    "repeat_retailer",
    "used_chip",
    "used_pin_number",
    "online_order",
)
VELOCITY_FEATURES = (
    "transactions_1h",
    "amount_1h",
    "transactions_24h",
    "amount_24h",
)
CONTEXT_FEATURES = ("card_transactions", "card_registered")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


@dataclass
class Transaction:
    """The raw request of a fraud decision (what a card network sends)."""

    card_id: str
    timestamp_us: int  # microseconds since the Unix epoch, UTC
    amount: float
    merchant_id: str
    merchant_latitude: float
    merchant_longitude: float
    chip: int  # 1 if the chip was read
    pin: int  # 1 if a PIN was entered
    online: int  # 1 if an online (card-not-present) order


@dataclass
class CardState:
    """What the online store keeps per card, updated by every scored transaction.
    Field names are the feature view's (`card_activity`)."""

    last_latitude: float | None = None
    last_longitude: float | None = None
    last_timestamp_us: int | None = None
    median_purchase: float | None = None
    transactions: int = 0
    merchants_seen: list[str] = field(default_factory=list)  # oldest first
    recent_amounts: list[float] = field(default_factory=list)  # last MEDIAN_WINDOW
    recent_timestamps_us: list[int] = field(default_factory=list)  # last 24 h
    recent_window_amounts: list[float] = field(default_factory=list)  # same order

    def as_row(self) -> dict[str, Any]:
        return {
            "last_latitude": self.last_latitude,
            "last_longitude": self.last_longitude,
            "last_timestamp_us": self.last_timestamp_us,
            "median_purchase": self.median_purchase,
            "transactions": self.transactions,
            "merchants_seen": list(self.merchants_seen),
            "recent_amounts": list(self.recent_amounts),
            "recent_timestamps_us": list(self.recent_timestamps_us),
            "recent_window_amounts": list(self.recent_window_amounts),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CardState:
        """From the stored fields; a card never seen has them all None (or NaN, from
        a pandas frame)."""
        if _missing(row.get("transactions")):
            return cls()
        stamp = row["last_timestamp_us"]
        return cls(
            last_latitude=None
            if _missing(row["last_latitude"])
            else row["last_latitude"],
            last_longitude=None
            if _missing(row["last_longitude"])
            else row["last_longitude"],
            last_timestamp_us=None if _missing(stamp) else int(stamp),
            median_purchase=None
            if _missing(row["median_purchase"])
            else row["median_purchase"],
            transactions=int(row["transactions"]),
            merchants_seen=list(row["merchants_seen"] or []),
            recent_amounts=list(row["recent_amounts"] or []),
            recent_timestamps_us=[int(t) for t in row["recent_timestamps_us"] or []],
            recent_window_amounts=list(row["recent_window_amounts"] or []),
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


STATE_FIELDS = tuple(CardState().as_row())


def advance(state: CardState, txn: Transaction) -> CardState:
    """The card's state after `txn` (a new object; `state` is left as it was)."""
    merchants = [m for m in state.merchants_seen if m != txn.merchant_id]
    merchants.append(txn.merchant_id)
    amounts = [*state.recent_amounts, float(txn.amount)][-MEDIAN_WINDOW:]
    since = txn.timestamp_us - DAY_US
    kept = [
        (t, a)
        for t, a in zip(
            state.recent_timestamps_us, state.recent_window_amounts, strict=True
        )
        if t > since
    ]
    kept.append((txn.timestamp_us, float(txn.amount)))
    kept = kept[-MAX_RECENT:]
    return CardState(
        last_latitude=float(txn.merchant_latitude),
        last_longitude=float(txn.merchant_longitude),
        last_timestamp_us=int(txn.timestamp_us),
        median_purchase=float(median(amounts)),
        transactions=state.transactions + 1,
        merchants_seen=merchants[-MAX_MERCHANTS:],
        recent_amounts=amounts,
        recent_timestamps_us=[t for t, _ in kept],
        recent_window_amounts=[a for _, a in kept],
    )


def fraud_features(
    txn: Transaction,
    state: CardState,
    home_latitude: float | None,
    home_longitude: float | None,
) -> dict[str, float | int]:
    """The fraud model's features (and velocity and context) for `txn`, given the
    card's state before it and its registered home."""
    registered = home_latitude is not None and home_longitude is not None
    lat, lon = float(txn.merchant_latitude), float(txn.merchant_longitude)
    home = (
        haversine_km(float(home_latitude), float(home_longitude), lat, lon)  # type: ignore[arg-type]
        if registered
        else 0.0
    )
    if state.last_latitude is None or state.last_longitude is None:
        from_last = 0.0
    else:
        from_last = haversine_km(state.last_latitude, state.last_longitude, lat, lon)
    ratio = (
        float(txn.amount) / state.median_purchase
        if state.median_purchase  # None or 0: no median to compare with
        else 1.0
    )
    hour_ago, day_ago = txn.timestamp_us - HOUR_US, txn.timestamp_us - DAY_US
    count_1h = count_24h = 0
    sum_1h = sum_24h = 0.0
    for t, a in zip(
        state.recent_timestamps_us, state.recent_window_amounts, strict=True
    ):
        if day_ago < t < txn.timestamp_us:
            count_24h += 1
            sum_24h += a
            if t > hour_ago:
                count_1h += 1
                sum_1h += a
    return {
        "distance_from_home": home,
        "distance_from_last_transaction": from_last,
        "ratio_to_median_purchase_price": ratio,
        "repeat_retailer": 1.0 if txn.merchant_id in state.merchants_seen else 0.0,
        "used_chip": float(txn.chip),
        "used_pin_number": float(txn.pin),
        "online_order": float(txn.online),
        "transactions_1h": count_1h,
        "amount_1h": sum_1h,
        "transactions_24h": count_24h,
        "amount_24h": sum_24h,
        "card_transactions": state.transactions,
        "card_registered": int(registered),
    }

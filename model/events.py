"""Seeded raw events with per-entity histories: what the decision service receives.

`model/synthetic.py` generates finished feature rows; these generators produce the
events the features are computed from (DATA.md, "Raw events"):

- `card_transactions`: a card register (each card's home) and card transactions (card,
  time, amount, merchant and its location, chip, PIN, online, fraud label).
- `bnpl_checkouts`: BNPL checkouts (customer, time, basket amount, merchant group,
  default label); `bnpl_events` adds each checkout's invoice's payment events (paid on
  time or late after reminders, sent to debt collection, recovered, archived with a
  status), driven by the same latent risk per customer.

Card fraud is shaped like real data: rare (about 0.3% of transactions), in short bursts
on a compromised card, mostly far from home and from the card's last purchase, well
above its usual amount, at merchants it never used, online without chip or PIN; a
fifth of the frauds look like the cardholder (nearby, usual amounts), and cardholders
travel, shop online at new merchants and make large purchases too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from riskserve.model.specs import MERCHANT_GROUPS

# Column names of the card transaction events (the raw request of the fraud decision).
CARD_ID = "card_id"
EVENT_TIMESTAMP = "event_timestamp"
TRANSACTION_COLUMNS = (
    "transaction_id",
    CARD_ID,
    EVENT_TIMESTAMP,
    "amount",
    "merchant_id",
    "merchant_latitude",
    "merchant_longitude",
    "chip",
    "pin",
    "online",
    "fraud",
)
CARD_COLUMNS = (CARD_ID, "issued_at", "home_latitude", "home_longitude")
CUSTOMER_ID = "customer_id"
CHECKOUT_COLUMNS = (
    "checkout_id",
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    "basket_amount",
    "merchant_group",
    "default",
)
# The payment events of the checkouts' invoices (the credit features' history).
PAYMENT_COLUMNS = (
    "checkout_id",
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    "checkout_timestamp",  # the invoice's issue time: identifies it per customer
    "kind",  # one of PAYMENT_KINDS
    "amount",  # paid (kind payment), else 0
    "status",  # 1 to 4 (kind archived), else 0
)
PAYMENT_KINDS = (
    "payment",
    "reminder",
    "second_reminder",
    "debt_collection",
    "archived",
)
INVOICE_DUE_DAYS = 30  # a BNPL invoice is due 30 days after the checkout

START = pd.Timestamp("2026-01-01", tz="UTC")
_CITIES = 40
_MERCHANTS_PER_CITY = 150
_ONLINE_MERCHANTS = 400
_FAVOURITES = 10  # in-store merchants a card returns to
_FAVOURITE_ONLINE = 4


@dataclass(frozen=True)
class CardEvents:
    cards: pd.DataFrame  # CARD_COLUMNS: the card register (home location)
    transactions: pd.DataFrame  # TRANSACTION_COLUMNS, sorted by time


def card_transactions(
    cards: int = 2_000, days: int = 30, seed: int = 0, fraud_rate: float = 0.003
) -> CardEvents:
    """`cards` cards over `days` days from 2026-01-01 UTC, about 2 transactions a card
    a day, `fraud_rate` of them fraud (in bursts of 1 to 5 on compromised cards)."""
    if cards < 1 or days < 1:
        raise ValueError(f"cards and days must be at least 1, got {cards}, {days}")
    rng = np.random.default_rng(seed)
    # Cities (Europe-ish), their shops, and online merchants registered anywhere.
    city_lat = rng.uniform(36.0, 60.0, _CITIES)
    city_lon = rng.uniform(-9.0, 28.0, _CITIES)
    shop_city = np.repeat(np.arange(_CITIES), _MERCHANTS_PER_CITY)
    shop_lat = city_lat[shop_city] + rng.normal(0.0, 0.06, shop_city.size)
    shop_lon = city_lon[shop_city] + rng.normal(0.0, 0.09, shop_city.size)
    shop_ids = np.array(
        [
            f"m{c:02d}-{k:03d}"
            for c in range(_CITIES)
            for k in range(_MERCHANTS_PER_CITY)
        ]
    )
    # Online shops are registered in a city too; a card's usual ones are at home.
    web_city = np.arange(_ONLINE_MERCHANTS) % _CITIES
    web_lat = city_lat[web_city] + rng.normal(0.0, 0.05, _ONLINE_MERCHANTS)
    web_lon = city_lon[web_city] + rng.normal(0.0, 0.05, _ONLINE_MERCHANTS)
    web_ids = np.array([f"web-{k:03d}" for k in range(_ONLINE_MERCHANTS)])

    # The cards: home, usual spend, activity, habits.
    home_city = rng.integers(0, _CITIES, cards)
    home_lat = city_lat[home_city] + rng.normal(0.0, 0.05, cards)
    home_lon = city_lon[home_city] + rng.normal(0.0, 0.07, cards)
    usual_amount = np.exp(rng.normal(np.log(35.0), 0.6, cards))
    daily_rate = np.exp(rng.normal(np.log(1.6), 0.5, cards))
    online_share = rng.beta(2.0, 3.0, cards)
    favourites = home_city[:, None] * _MERCHANTS_PER_CITY + rng.integers(
        0, _MERCHANTS_PER_CITY, (cards, _FAVOURITES)
    )
    web_per_city = _ONLINE_MERCHANTS // _CITIES
    favourite_web = home_city[:, None] + _CITIES * rng.integers(
        0, web_per_city, (cards, _FAVOURITE_ONLINE)
    )
    issued = START - pd.to_timedelta(rng.integers(30, 2_000, cards), unit="D")
    card_ids = np.array([f"card-{seed:02d}-{i:06d}" for i in range(cards)])

    # Legitimate transactions: Poisson per card, seconds apart at least.
    counts = rng.poisson(daily_rate * days)
    owner = np.repeat(np.arange(cards), counts)
    n = owner.size
    seconds = rng.uniform(0.0, days * 86_400.0, n).astype(np.int64)
    online = rng.random(n) < online_share[owner]
    roll = rng.random(n)
    fav_pick = favourites[owner, rng.integers(0, _FAVOURITES, n)]
    new_local = home_city[owner] * _MERCHANTS_PER_CITY + rng.integers(
        0, _MERCHANTS_PER_CITY, n
    )
    travel = rng.integers(0, shop_city.size, n)
    shop = np.where(roll < 0.86, fav_pick, np.where(roll < 0.96, new_local, travel))
    web = np.where(
        rng.random(n) < 0.8,
        favourite_web[owner, rng.integers(0, _FAVOURITE_ONLINE, n)],
        rng.integers(0, _ONLINE_MERCHANTS, n),
    )
    amount = usual_amount[owner] * np.exp(rng.normal(0.0, 0.75, n))
    # Now and then a large purchase (a holiday, a repair).
    amount = np.where(rng.random(n) < 0.02, amount * rng.uniform(3, 12, n), amount)
    chip = ~online & (rng.random(n) < 0.88)
    pin = chip & (rng.random(n) < 0.3)
    fraud = np.zeros(n, bool)

    # Fraud: bursts on compromised cards, sized to reach fraud_rate.
    bursts: list[tuple[int, int, int]] = []  # (card, start second, length)
    target = max(1, round(fraud_rate * n / (1.0 - fraud_rate)))
    made = 0
    while made < target:
        length = min(int(rng.integers(1, 6)), target - made)
        bursts.append(
            (
                int(rng.integers(0, cards)),
                int(rng.uniform(0.05, 0.98) * days * 86_400),
                length,
            )
        )
        made += length
    f_owner = np.array([b[0] for b in bursts for _ in range(b[2])])
    f_seconds = np.array(
        [b[1] + int(rng.uniform(0, 3 * 3_600)) for b in bursts for _ in range(b[2])],
        np.int64,
    )
    m = f_owner.size
    quiet = rng.random(m) < 0.2  # frauds that look like the cardholder
    f_online = np.where(quiet, rng.random(m) < 0.4, rng.random(m) < 0.75)
    f_shop = np.where(
        quiet,
        favourites[f_owner, rng.integers(0, _FAVOURITES, m)],
        rng.integers(0, shop_city.size, m),
    )
    f_web = rng.integers(0, _ONLINE_MERCHANTS, m)
    f_amount = usual_amount[f_owner] * np.exp(
        np.where(quiet, rng.normal(0.0, 0.75, m), rng.normal(np.log(5.0), 0.9, m))
    )
    f_chip = ~f_online & (rng.random(m) < np.where(quiet, 0.7, 0.15))
    f_pin = f_chip & (rng.random(m) < np.where(quiet, 0.2, 0.02))

    owner = np.concatenate([owner, f_owner])
    seconds = np.concatenate([seconds, f_seconds])
    online = np.concatenate([online, f_online])
    shop = np.concatenate([shop, f_shop])
    web = np.concatenate([web, f_web])
    amount = np.concatenate([amount, f_amount])
    chip = np.concatenate([chip, f_chip])
    pin = np.concatenate([pin, f_pin])
    fraud = np.concatenate([fraud, np.ones(m, bool)])

    # Sort by card then time; a card's transactions at least a second apart.
    order = np.lexsort((seconds, owner))
    owner, seconds = owner[order], seconds[order]
    same_card = np.r_[False, owner[1:] == owner[:-1]]
    for _ in range(8):  # collisions are rare; a few passes resolve chains
        clash = same_card & np.r_[False, seconds[1:] <= seconds[:-1]]
        if not clash.any():
            break
        seconds = np.where(clash, np.r_[seconds[:1], seconds[:-1]] + 1, seconds)
    online, shop, web = online[order], shop[order], web[order]
    merchant_id = np.where(online, web_ids[web], shop_ids[shop])
    lat = np.where(online, web_lat[web], shop_lat[shop])
    lon = np.where(online, web_lon[web], shop_lon[shop])
    frame = pd.DataFrame(
        {
            CARD_ID: card_ids[owner],
            EVENT_TIMESTAMP: START + pd.to_timedelta(seconds, unit="s"),
            "amount": np.round(amount[order], 2).clip(0.5, None),
            "merchant_id": merchant_id,
            "merchant_latitude": lat,
            "merchant_longitude": lon,
            "chip": chip[order].astype(np.int64),
            "pin": pin[order].astype(np.int64),
            "online": online.astype(np.int64),
            "fraud": fraud[order].astype(np.int64),
        }
    )
    frame = frame.sort_values([EVENT_TIMESTAMP, CARD_ID], kind="stable")
    frame.insert(0, "transaction_id", [f"tx-{seed:02d}-{i:08d}" for i in range(n + m)])
    register = pd.DataFrame(
        {
            CARD_ID: card_ids,
            "issued_at": issued,
            "home_latitude": home_lat,
            "home_longitude": home_lon,
        }
    )
    return CardEvents(register, frame.reset_index(drop=True)[list(TRANSACTION_COLUMNS)])


# Merchant groups of the credit schema: share of checkouts and default log-odds added.
_GROUP_EFFECT = {
    "Clothing & Shoes": (0.16, 0.0),
    "Intangible products": (0.12, 0.45),
    "Food & Beverage": (0.14, -0.2),
    "Entertainment": (0.20, 0.1),
    "Erotic Material": (0.04, 0.6),
    "Leisure, Sport & Hobby": (0.09, -0.1),
    "Home & Garden": (0.07, -0.3),
    "Electronics": (0.06, 0.2),
    "Children Products": (0.05, -0.2),
    "Health & Beauty": (0.05, 0.0),
    "Automotive Products": (0.02, 0.1),
}
assert set(_GROUP_EFFECT) == set(MERCHANT_GROUPS)


def bnpl_checkouts(
    customers: int = 5_000, days: int = 365, seed: int = 0
) -> pd.DataFrame:
    """BNPL checkouts of `customers` customers over `days` days: a latent risk per
    customer drives how often they buy, how much, and whether a checkout defaults
    (about 1.5% of checkouts, more for customers who defaulted before). A customer's
    checkouts are at least a second apart."""
    return _checkouts(customers, days, seed)[0]


@dataclass(frozen=True)
class BnplEvents:
    checkouts: pd.DataFrame  # CHECKOUT_COLUMNS, sorted by time
    payments: pd.DataFrame  # PAYMENT_COLUMNS, sorted by time, up to the log's end


def bnpl_events(customers: int = 5_000, days: int = 365, seed: int = 0) -> BnplEvents:
    """`bnpl_checkouts` and the payment events of their invoices up to the end of the
    log (`days` after 2026-01-01 UTC). Each invoice is due `INVOICE_DUE_DAYS` after
    its checkout and then, by the customer's latent risk:

    - paid on time (status 1): one payment before the due date;
    - paid after a reminder (status 2): `reminder` a day after the due date, payment
      within 30 days of it;
    - paid after a second reminder (status 3): `second_reminder` 31 days after the due
      date, payment within the next 30 days;
    - sent to debt collection (status 4): `debt_collection` 61 days after the due date;
      a checkout that does not default is recovered in full later, one that defaults
      (the `default` label) has at most a partial recovery and is written off 180
      days after collection.

    Every invoice closes with an `archived` event (its status: the worst stage it
    reached) a second after its last payment or at its write-off. Payment events fall
    half a second past a whole second, so never at a checkout's time, and a
    customer's events are at distinct times. Deterministic by seed."""
    checkouts, risk = _checkouts(customers, days, seed)
    rng = np.random.default_rng([seed, 25])  # a stream of its own: checkouts unchanged
    n = len(checkouts)
    issued = (
        checkouts[EVENT_TIMESTAMP].astype("datetime64[us, UTC]").astype("int64")
    ).to_numpy() // 1_000_000
    amount = checkouts["basket_amount"].to_numpy(np.float64)
    default = checkouts["default"].to_numpy() == 1
    day = 86_400
    due = issued + INVOICE_DUE_DAYS * day

    def chance(base: float) -> np.ndarray:
        return rng.random(n) < 1.0 / (1.0 + np.exp(-(base + 1.1 * risk)))

    late = default | chance(-2.2)
    later = default | (late & chance(-1.0))
    collected = default | (later & chance(-1.2))
    # How the invoice ends: the stage at which it is paid (or written off).
    stage = np.where(collected, 4, np.where(later, 3, np.where(late, 2, 1)))
    offsets = rng.random((n, 4))
    paid_at = np.select(
        [stage == 1, stage == 2, stage == 3],
        [
            issued + (1 + offsets[:, 0] * (INVOICE_DUE_DAYS - 1.5)) * day,
            due + (1.5 + offsets[:, 0] * 28) * day,
            due + (31.5 + offsets[:, 0] * 28) * day,
        ],
        due + (66 + offsets[:, 0] * 90) * day,  # recovered from collection
    ).astype(np.int64)
    rows: list[tuple[int, int, str, float, int]] = []  # (row, second, kind, amount, st)
    for i in range(n):
        s = int(stage[i])
        if s >= 2:
            rows.append((i, int(due[i]) + day, "reminder", 0.0, 0))
        if s >= 3:
            rows.append((i, int(due[i]) + 31 * day, "second_reminder", 0.0, 0))
        if s == 4:
            rows.append((i, int(due[i]) + 61 * day, "debt_collection", 0.0, 0))
        if default[i]:
            sent = int(due[i]) + 61 * day
            if offsets[i, 1] < 0.5:  # a partial recovery before the write-off
                part = round(float(amount[i]) * (0.1 + 0.5 * offsets[i, 2]), 2)
                rows.append(
                    (
                        i,
                        sent + int((10 + offsets[i, 3] * 150) * day),
                        "payment",
                        part,
                        0,
                    )
                )
            rows.append((i, sent + 180 * day, "archived", 0.0, 4))
        else:
            rows.append((i, int(paid_at[i]), "payment", float(amount[i]), 0))
            rows.append((i, int(paid_at[i]) + 1, "archived", 0.0, s))
    row = np.array([r[0] for r in rows], np.int64)
    seconds = np.array([r[1] for r in rows], np.int64)
    owner = checkouts[CUSTOMER_ID].to_numpy()[row]
    # A customer's payment events at distinct times (checkouts are whole seconds,
    # payment events half a second past one).
    order = np.lexsort((np.arange(row.size), seconds, owner))
    row, seconds, owner = row[order], seconds[order], owner[order]
    kinds = np.array([r[2] for r in rows], object)[order]
    paid = np.array([r[3] for r in rows])[order]
    status = np.array([r[4] for r in rows], np.int64)[order]
    same = np.r_[False, owner[1:] == owner[:-1]]
    for _ in range(16):
        clash = same & np.r_[False, seconds[1:] <= seconds[:-1]]
        if not clash.any():
            break
        seconds = np.where(clash, np.r_[seconds[:1], seconds[:-1]] + 1, seconds)
    end = (START + pd.Timedelta(days=days)).value // 1_000
    stamps_us = seconds * 1_000_000 + 500_000
    keep = stamps_us < end
    frame = pd.DataFrame(
        {
            "checkout_id": checkouts["checkout_id"].to_numpy()[row],
            CUSTOMER_ID: owner,
            EVENT_TIMESTAMP: pd.to_datetime(stamps_us, unit="us", utc=True),
            "checkout_timestamp": checkouts[EVENT_TIMESTAMP]
            .iloc[row]
            .reset_index(drop=True),
            "kind": kinds,
            "amount": paid,
            "status": status,
        }
    )[keep]
    frame = frame.sort_values([EVENT_TIMESTAMP, CUSTOMER_ID], kind="stable")
    return BnplEvents(checkouts, frame.reset_index(drop=True)[list(PAYMENT_COLUMNS)])


def _checkouts(customers: int, days: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The checkouts and each one's customer's latent risk (same order)."""
    if customers < 1 or days < 1:
        raise ValueError(
            f"customers and days must be at least 1, got {customers}, {days}"
        )
    rng = np.random.default_rng(seed)
    risk = rng.normal(0.0, 1.0, customers)
    rate = np.exp(rng.normal(np.log(12.0 / 365.0), 0.7, customers))
    counts = rng.poisson(rate * days)
    owner = np.repeat(np.arange(customers), counts)
    n = owner.size
    seconds = rng.uniform(0.0, days * 86_400.0, n).astype(np.int64)
    basket = np.round(np.exp(rng.normal(np.log(60.0) + 0.2 * risk[owner], 0.8)), 2)
    names = list(_GROUP_EFFECT)
    shares = np.array([_GROUP_EFFECT[g][0] for g in names])
    group = rng.choice(len(names), n, p=shares / shares.sum())
    effect = np.array([_GROUP_EFFECT[g][1] for g in names])[group]
    log_odds = -4.6 + 1.3 * risk[owner] + effect + 0.25 * np.log(basket / 60.0)
    default = rng.random(n) < 1.0 / (1.0 + np.exp(-log_odds))
    # A customer's checkouts at distinct seconds (collisions are rare).
    order = np.lexsort((seconds, owner))
    sorted_seconds = seconds[order]
    same = np.r_[False, owner[order][1:] == owner[order][:-1]]
    for _ in range(8):
        clash = same & np.r_[False, sorted_seconds[1:] <= sorted_seconds[:-1]]
        if not clash.any():
            break
        sorted_seconds = np.where(
            clash, np.r_[sorted_seconds[:1], sorted_seconds[:-1]] + 1, sorted_seconds
        )
    seconds[order] = sorted_seconds
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: np.array(
                [f"cust-{seed:02d}-{i:06d}" for i in range(customers)]
            )[owner],
            EVENT_TIMESTAMP: START + pd.to_timedelta(seconds, unit="s"),
            "basket_amount": basket,
            "merchant_group": np.array(names, dtype=object)[group],
            "default": default.astype(np.int64),
            "_risk": risk[owner],
        }
    ).sort_values([EVENT_TIMESTAMP, CUSTOMER_ID], kind="stable")
    frame.insert(0, "checkout_id", [f"co-{seed:02d}-{i:08d}" for i in range(n)])
    frame = frame.reset_index(drop=True)
    return frame[list(CHECKOUT_COLUMNS)], frame["_risk"].to_numpy()

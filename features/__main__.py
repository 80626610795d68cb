"""`python -m riskserve.features generate OUT`: a synthetic raw event log to train
from (`riskserve train fraud|credit --events OUT`) or to replay through a
transformer: cards and their transactions, BNPL checkouts and their invoices'
payment events."""

from __future__ import annotations

import argparse
from pathlib import Path

from riskserve.features.customer_offline import CHECKOUTS_FILE, PAYMENTS_FILE
from riskserve.features.offline import TRANSACTIONS_FILE
from riskserve.features.repo import CARDS_FILE
from riskserve.model.events import bnpl_events, card_transactions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskserve.features")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a synthetic raw event log")
    gen.add_argument("out", type=Path, help="folder of the event log")
    gen.add_argument("--cards", type=int, default=2_000)
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--customers", type=int, default=5_000)
    gen.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.cards, args.days, args.customers) < 1:
        parser.error("--cards, --days and --customers must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    cards = card_transactions(args.cards, args.days, args.seed)
    cards.cards.to_parquet(args.out / CARDS_FILE, index=False)
    cards.transactions.to_parquet(args.out / TRANSACTIONS_FILE, index=False)
    # Two years of BNPL history at least: the credit features' longest window.
    bnpl = bnpl_events(args.customers, max(args.days, 730), args.seed)
    bnpl.checkouts.to_parquet(args.out / CHECKOUTS_FILE, index=False)
    bnpl.payments.to_parquet(args.out / PAYMENTS_FILE, index=False)
    log = cards.transactions
    print(
        f"{args.out}: {len(cards.cards)} cards, {len(log)} transactions "
        f"({int(log['fraud'].sum())} fraud), {len(bnpl.checkouts)} BNPL checkouts "
        f"({int(bnpl.checkouts['default'].sum())} defaults), "
        f"{len(bnpl.payments)} payment events"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m riskserve.features generate OUT`: a synthetic raw event log to train
from (`riskserve train fraud|credit --events OUT`) or to replay through a
transformer: cards and their transactions, BNPL checkouts and their invoices'
payment events.

`python -m riskserve.features push-payments FILE --repo DIR`: the payments ledger's
events into the online store, each customer's state advanced
(`riskserve.features.payments_push`)."""

from __future__ import annotations

import argparse
import sys
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
    push = sub.add_parser(
        "push-payments",
        help="advance customers' online state by a file of payment events",
        description="Parquet (the event log's payment columns) or JSON lines "
        "(PaymentEvent fields), each customer's events in time order; every row is "
        "checked before anything is written.",
    )
    push.add_argument("file", type=Path, help="payments .parquet or .jsonl")
    push.add_argument(
        "--repo",
        type=Path,
        required=True,
        help="the feature repository the transformer serves from (--feature_repo)",
    )
    push.add_argument(
        "--online-store",
        type=Path,
        default=None,
        help="the SQLite online store file (default: the repository's online.db)",
    )
    push.add_argument("--redis", default=None, help="a Redis online store, host:port")
    push.add_argument("--batch", type=int, default=1_000, help="events per commit")
    args = parser.parse_args(argv)
    if args.command == "push-payments":
        if args.batch < 1:
            parser.error("--batch must be at least 1")
        return push_payments(
            args.file, args.repo, args.online_store, args.redis, args.batch
        )
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


def push_payments(
    file: Path, repo: Path, online_store: Path | None, redis: str | None, batch: int
) -> int:
    from riskserve.features.payments_push import (
        BadPaymentFile,
        push_payment_events,
        read_payment_events,
    )
    from riskserve.features.pending_states import WriteFailed
    from riskserve.features.store_config import open_feature_store

    try:
        events = read_payment_events(file)
    except BadPaymentFile as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    customers = len({e.customer_id for e in events})
    print(f"{file}: {len(events)} payment events of {customers} customers, all valid")
    try:
        store = open_feature_store(repo, online_store, redis)
    except Exception as exc:  # the registry or the store's settings: one line
        print(f"error: cannot open the feature store {repo}: {exc}", file=sys.stderr)
        return 1

    def progress(done: int, total: int) -> None:
        print(f"pushed {done}/{total}", flush=True)

    try:
        pushed = push_payment_events(store, events, batch, progress)
    except WriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {pushed} payment events pushed, {customers} customers advanced")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

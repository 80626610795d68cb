"""`python -m riskserve.governance records <command> ...`: the records pass and the
record queries (governance/records_cli.py), for an image or a CronJob without the
`riskserve` CLI's other commands; `riskserve decisions ...` is the same."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "records":
        print(
            "usage: python -m riskserve.governance records "
            "{compact,show,export,sweep,retention} ...",
            file=sys.stderr,
        )
        return 2
    from riskserve.governance.records_cli import main as records_main

    return records_main(argv[1:], prog="python -m riskserve.governance records")


if __name__ == "__main__":
    sys.exit(main())

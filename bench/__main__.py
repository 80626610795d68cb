"""`make bench`: every benchmark, one after the other, in one sitting.

- bench/runner.py: the predictor against stock KServe, a bare ASGI floor and the
  gateway (single-row v2 REST from a load generator in another process);
- bench/probe_latency.py: health probes and single-row requests while 100,000-row gRPC
  batches run;
- bench/binary_and_workers.py: binary tensors against JSON, `--workers 2` against 1;
- bench/transformer_e2e.py: a raw transaction through the gateway, the transformer and
  the predictor at 500 req/s, beside KServe's own transformer with the Feast SDK;
- bench/policy_eval.py: the decision policy's cost per request and per row, in process.
"""

from __future__ import annotations

import sys

from bench import (
    binary_and_workers,
    policy_eval,
    probe_latency,
    runner,
    transformer_e2e,
)

if __name__ == "__main__":
    sys.exit(
        runner.main()
        or probe_latency.main([])
        or binary_and_workers.main([])
        or transformer_e2e.main([])
        or policy_eval.main([])
    )

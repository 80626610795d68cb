"""`make bench`: the predictor against stock KServe and a bare ASGI floor.

One machine, one fraud ONNX model, single-row v2 REST requests from a load generator in
another process (8 keep-alive connections). See bench/runner.py for what is measured.
"""

from __future__ import annotations

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())

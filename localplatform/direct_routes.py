"""The predictor revisions a transformer may call directly (one hop fewer).

A transformer revision reaches its predictor component through the gateway's
predictor listener, which plays KServe's `<isvc>-predictor` split. When that split is
one ready revision taking all the traffic, with no shadow, the listener only relays;
the platform then names the revision's address in a routes file the transformers read
(`transformer/predictor_routes.py`), and they call it directly. Any other split is
left out, so the listener splits it as before. Written on every change of the
platform's routes, by renaming a finished file into place (never half-read).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from riskserve.localplatform.state import InferenceServiceState


def direct_predictors(services: Iterable[InferenceServiceState]) -> dict[str, str]:
    """`{isvc: "127.0.0.1:<port>"}` for each InferenceService with a transformer
    whose predictor split is one ready revision, no shadow."""
    direct = {}
    for service in services:
        if service.transformer is None or service.shadow_revision() is not None:
            continue
        routes = service.routes()
        if len(routes) != 1:
            continue
        revision, _ = routes[0]
        if revision.ready and revision.http_port:
            direct[service.name] = f"127.0.0.1:{revision.http_port}"
    return direct


def write_routes(path: Path, predictors: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"predictors": predictors}, sort_keys=True))
    os.replace(temporary, path)

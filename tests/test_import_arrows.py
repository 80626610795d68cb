"""The rooms of DESIGN.md, enforced: every import of the product and its tests is read
from the source (AST, so imports inside functions count too) and checked against the
arrows each room may follow. Only the CLI (`riskserve/`) imports every room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.fixtures.rooms import ROOMS

pytestmark = pytest.mark.inprocess

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ROOMS
EVERYTHING = (*PRODUCT, "riskserve")
# The rooms a room may import (by top-level package, or a single module of another).
ALLOWED: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    # The predictor runtime: what runs in every InferenceService pod. Of the model
    # contract only the S3 client's settings, which the monitor shares, so the log the
    # predictor writes is read back with the same variables (KServe's S3_ENDPOINT,
    # S3_USE_HTTPS included); it needs only the base install every image shares.
    "serving": ("serving", "model.s3_client"),
    # The local platform starts predictors by their command line; it shares only the
    # predictor's bucket edges, so its histograms line up with the predictor's, its
    # HTTP limits (slow clients, overload), so the gateway holds as a predictor does,
    # and the v2 gRPC protocol's generated messages, which the gateway's gRPC side
    # reads (the model's name, a shadow's outputs), and the refusal of requests web
    # pages make (the same rule on every data-plane port). The pooled keep-alive
    # HTTP/1.1 client is shared with the transformer's hop to its predictor (one copy,
    # not two; it imports nothing of the predictor).
    "localplatform": (
        "localplatform",
        "serving.buckets",
        "serving.http_limits",
        "serving.grpc_v2",
        "serving.keepalive_client",
        "serving.browser_guard",
        # The startup heap frozen out of full collections, as in the predictor.
        "serving.memory",
    ),
    # Rollouts reach the local platform through its client module, never the CLI; of
    # the model contract only MLflow's client limits, which training and the monitor
    # share, so a rollout's MLflow calls are bounded as theirs are, and its REST read
    # of a version's tags.
    "rollout": (
        "rollout",
        "model.mlflow_settings",
        # the approval gate's read of a version's tags without importing MLflow
        "model.registry_tags",
        "localplatform.client",
        "localplatform.settings",
        "serving.buckets",
        "serving.model_uri",
        # The approval gate: a version's validation status as governance writes it
        # (stdlib only), so the tag names live in one place.
        "governance.status",
    ),
    # training builds training sets from events with the feature layer's own
    # point-in-time joins, so the features it learns from are those it is served.
    # New versions are registered as drafts, with governance's tag names (stdlib only).
    "training": ("training", "model", "features", "governance.status"),
    "app": ("app", "model"),
    # Drift and late labels: the shared profile schema; the inference-log format is
    # read as data, and retraining and rollouts run as commands, never imported.
    "monitoring": ("monitoring", "model"),
    # The feature layer (Feast repository, feature code): the model contract only.
    # The predictor never imports it (it stays lean).
    "features": ("features", "model"),
    # The transformer (KServe's spec.transformer): the feature layer and the model
    # contract; of the predictor only what any v2 server in front of it shares: the v2
    # tensor codec (JSON and binary tensors, the same 400 messages), KServe's
    # container arguments (held equal to KServe's by a test), the HTTP limits, the
    # histogram edges and the JSON log format. It reaches the predictor over v2 only,
    # through the keep-alive client the gateway uses too.
    "transformer": (
        "transformer",
        "features",
        "model",
        "serving.binary_tensors",
        "serving.tensors",
        "serving.errors",
        "serving.kserve_args",
        "serving.http_limits",
        "serving.buckets",
        "serving.logs",
        "serving.keepalive_client",
        "serving.browser_guard",
        # The inference log: the predictor's writer (spool, one write(2) before the
        # answer, flock, folder or S3) and its S3 settings, so a transformer's records
        # are as durable as the predictor's and in the format the monitor reads.
        "serving.inference_log",
        "serving.settings",
        # serving.inference_log counts its writes and failures in the predictor's
        # counters: imported with it, so shipped in the transformer image too.
        "serving.metrics",
        # Its v2 gRPC server (transformer/grpc_server.py): the predictor's generated
        # messages, its decoder of a ModelInferRequest's tensors and of packed
        # contents, so both servers read a gRPC request alike.
        "serving.grpc_v2",
        "serving.grpc_inputs",
        "serving.grpc_contents",
        # The v2 service registered with the predictor's lenient request parsers.
        "serving.grpc_lenient",
        # Its startup heap (Feast, pandas) frozen out of full collections, as the
        # predictor's (stdlib only).
        "serving.memory",
    ),
    # Model risk governance (validation reports, fairness, approvals): the model
    # contract (specs, data loading, the reference profile's PSI) and MLflow's client
    # limits; the registry through MLflow's own client. Never training's internals: a
    # report reads what a training job logged, so it judges the version as registered.
    "governance": ("governance", "model"),
    "riskserve": EVERYTHING,
    # Benchmarks build the same test-only contract models as the tests.
    "bench": ("bench", *EVERYTHING, "tests.fixtures"),
    # The real public credit data sets (bench/real_credit.py reads them from installed
    # packages): the governance tests train and report on German credit as the
    # benchmarks do, from the same frames rather than a second loader.
    "tests": ("tests", *EVERYTHING, "bench.real_credit"),
}
FIRST_PARTY = {*ALLOWED, "bench", "tests"}


def logical(module: str) -> str:
    """`riskserve.serving.buckets` -> `serving.buckets`: the room a module lives in.
    Every room installs under `riskserve.` (setup.py); the CLI's own modules
    (`riskserve.cli`, ...) stay `riskserve.*`."""
    parts = module.split(".")
    if parts[0] == "riskserve" and len(parts) > 1 and parts[1] in PRODUCT:
        return ".".join(parts[1:])
    return module


def bare_room_imports(path: Path) -> list[str]:
    """Imports of a room by its folder name (`import serving`): they work only from a
    checkout, where the repository root is on sys.path; an installed wheel has
    `riskserve.serving` alone."""
    return [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for line, module in raw_imports(path)
        if module.split(".")[0] in PRODUCT
    ]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    return [(line, logical(module)) for line, module in raw_imports(path)]


def raw_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from serving import buckets` imports the module serving.buckets.
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def allowed(room: str, module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED[room])


def arrows_the_wrong_way() -> list[str]:
    wrong = []
    for room in ALLOWED:
        for path in sorted((REPO / room).rglob("*.py")):
            if "grpc_v2" in path.parts:  # generated stubs
                continue
            for line, module in imported_modules(path):
                top = module.split(".")[0]
                if top not in FIRST_PARTY or allowed(room, module):
                    continue
                # `from serving import x` also yields "serving": judge the full name.
                if any(
                    other.startswith(module + ".") and allowed(room, other)
                    for _, other in imported_modules(path)
                ):
                    continue
                wrong.append(f"{path.relative_to(REPO)}:{line}: {room} -> {module}")
    return wrong


def test_every_import_runs_the_way_the_rooms_allow() -> None:
    wrong = arrows_the_wrong_way()
    assert not wrong, "imports against the rooms of DESIGN.md:\n" + "\n".join(wrong)


def test_every_room_is_imported_by_its_installed_name() -> None:
    found = [
        hit
        for room in ALLOWED
        for path in sorted((REPO / room).rglob("*.py"))
        if "grpc_v2" not in path.parts
        for hit in bare_room_imports(path)
    ]
    assert not found, "import these as riskserve.<room>:\n" + "\n".join(found)


def test_every_room_has_its_arrows() -> None:
    assert set(PRODUCT) == set(ALLOWED) - {"riskserve", "bench", "tests"}


def test_every_product_folder_is_a_known_room() -> None:
    # A new top-level package must be given its arrows here before it can land.
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages <= FIRST_PARTY, sorted(packages - FIRST_PARTY)


@pytest.mark.parametrize(
    ("room", "module", "expected"),
    [
        ("serving", "localplatform.processes", False),
        ("serving", "model.s3_client", True),
        ("serving", "model.specs", False),
        ("serving", "riskserve.cli", False),
        ("rollout", "riskserve.platform_cli", False),
        ("rollout", "localplatform.client", True),
        ("rollout", "localplatform.controller", False),
        ("bench", "tests.serving.predictor_helpers", False),
        ("tests", "bench.runner", False),
        ("app", "serving.model", False),
        ("monitoring", "model.reference_profile", True),
        ("monitoring", "training.job", False),
        ("monitoring", "serving.inference_log", False),
        ("monitoring", "riskserve.cli", False),
    ],
)
def test_the_checker_tells_a_wrong_arrow(
    room: str, module: str, expected: bool
) -> None:
    assert allowed(room, module) is expected

"""The runtime keeps KServe's container contract and the v2 gRPC spec's wire types."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from riskserve.serving.__main__ import build_parser
from riskserve.serving.grpc_v2.generate import GENERATED, SPEC
from riskserve.serving.kserve_args import kserve_parser, strtobool

from tests.serving.predictor_helpers import REPO_ROOT

pytestmark = pytest.mark.inprocess

_DUMP_KSERVE_PARSER = """
import json
from kserve.model_server import parser
print(json.dumps([
    {"options": a.option_strings, "dest": a.dest, "default": a.default,
     "choices": a.choices, "nargs": a.nargs, "kind": type(a).__name__,
     "typed": a.type is not None}
    for a in parser._actions
]))
"""


def _describe(parser) -> list[dict]:  # noqa: ANN001
    return [
        {
            "options": a.option_strings,
            "dest": a.dest,
            "default": a.default,
            "choices": a.choices,
            "nargs": a.nargs,
            "kind": type(a).__name__,
            "typed": a.type is not None,
        }
        for a in parser._actions
    ]


def test_arguments_match_kserve_model_server_parser():
    # In a subprocess: importing kserve registers its own copy of the v2 protos.
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _DUMP_KSERVE_PARSER],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=env_free,
        timeout=120,
    )
    kserve_actions = json.loads(done.stdout.strip().splitlines()[-1])
    assert _describe(kserve_parser()) == kserve_actions


def test_entry_point_takes_kserve_arguments():
    args = build_parser().parse_args(
        [
            "--model_name",
            "fraud",
            "--model_dir",
            "/mnt/models",
            "--http_port",
            "9000",
            "--enable_grpc",
            "false",
            "--workers",
            "1",
            "--event-loop",
            "asyncio",
        ]
    )
    assert (args.model_name, args.model_dir, args.http_port) == (
        "fraud",
        "/mnt/models",
        9000,
    )
    assert args.enable_grpc is False
    assert args.grpc_port == 8081
    assert strtobool("Yes") and not strtobool("off")


def test_grpc_stubs_match_the_spec(tmp_path):
    # In its own process: grpc_tools' protoc carries a C++ protobuf that aborts the
    # interpreter when another one (OR-Tools', loaded with optbinning by the scorecard
    # tests) has registered the same descriptors first.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from riskserve.serving.grpc_v2.generate import generate; "
            "generate(Path(sys.argv[1]), Path(sys.argv[2]))",
            str(SPEC),
            str(tmp_path),
        ],
        check=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    written = [tmp_path / name for name in GENERATED]
    for path, name in zip(written, GENERATED, strict=True):
        committed = REPO_ROOT / "serving" / "grpc_v2" / name
        assert path.read_text() == committed.read_text(), (
            f"{committed} drifted from {SPEC}; run python -m riskserve.serving.grpc_v2.generate"
        )

"""The reliability and security suite: fuzzing, soak, faults and secrets, with figures.

Every test here is marked `reliability`. `pytest` (and `make test`) runs the fast pass;
`make reliability` adds `--reliability-full`: longer soak, ten times the fuzz examples,
more fault variants. What the tests measured is printed as one table at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.contract_models import (
    credit_model,
    fraud_model,
    write_mlflow_folder,
    write_onnx,
)
from tests.reliability.reliability_helpers import Budget, Ledger, print_ledger

HERE = Path(__file__).resolve().parent

LEDGER_KEY = pytest.StashKey[Ledger]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-full",
        action="store_true",
        default=False,
        help="the full reliability pass: 5 min soak, 10x fuzz examples, every fault "
        "variant (default: the fast pass that `make test` runs)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    # Everything in this folder belongs to the reliability pass (`-m reliability`).
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


def _ledger(config: pytest.Config) -> Ledger:
    if LEDGER_KEY not in config.stash:
        config.stash[LEDGER_KEY] = Ledger()
    return config.stash[LEDGER_KEY]


@pytest.fixture(scope="session")
def budget(pytestconfig: pytest.Config) -> Budget:
    # getoption with a default: in a plain `pytest` run over tests/ this conftest is
    # collected after the command line was parsed, so the option may not exist.
    full = bool(pytestconfig.getoption("reliability_full", default=False))
    return Budget.full_pass() if full else Budget.fast_pass()


@pytest.fixture(scope="session")
def ledger(pytestconfig: pytest.Config) -> Ledger:
    return _ledger(pytestconfig)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):  # noqa: ANN001, ANN201
    report = yield
    # The tests of these files are the rows of "faults survived".
    if report.when == "call" and item.path.name in (
        "test_faults.py",
        "test_daemon_crash.py",
    ):
        _ledger(item.config).fault_outcome(item.name, report.passed)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if LEDGER_KEY in config.stash:
        full = bool(config.getoption("reliability_full", default=False))
        print_ledger(config.stash[LEDGER_KEY], terminalreporter.write_line, full)


# -- models --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rel_models(tmp_path_factory) -> dict[str, Path]:
    """Contract models: fraud v1 and v2 (plain folders), credit (MLflow folder)."""
    root = tmp_path_factory.mktemp("reliability-models")
    return {
        "fraud-v1": write_onnx(fraud_model(version="1"), root / "fraud-v1").parent,
        "fraud-v2": write_onnx(fraud_model(version="2"), root / "fraud-v2").parent,
        "credit": write_mlflow_folder(credit_model(version="7"), root / "credit"),
    }


@pytest.fixture(scope="session")
def rel_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability-logs")

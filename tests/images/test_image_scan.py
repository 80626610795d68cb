"""The image scanner finds what the image tests assert is absent (a scanner that finds
nothing would pass them all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.rooms import ROOMS
from tests.images.image_scan import FIRST_PARTY, scan

pytestmark = pytest.mark.inprocess

SITE = "opt/venv/lib/python3.11/site-packages"
ENTRY_POINTS = "[console_scripts]\nriskserve = riskserve.cli:main\n"


def plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_clean_image_has_no_finding(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            f"{SITE}/riskserve/serving/__init__.py": "",
            f"{SITE}/riskserve-0.1.0.dist-info/entry_points.txt": ENTRY_POINTS,
            f"{SITE}/numpy/tests/test_core.py": "",
            f"{SITE}/numpy/conftest.py": "",
            f"{SITE}/tests/test_convert.py": "",  # tf2onnx's own tests package
            f"{SITE}/mlflow/tensorflow/__init__.py": "",
            "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
        },
    )
    found = scan(tmp_path, ["tests/serving/test_rest.py", "tests/conftest.py"])
    assert found == {
        "tensorflow": [],
        "git": [],
        "tests": [],
        "credentials": [],
        "first_party": ["riskserve.serving"],
        "broken_commands": [],
    }


def test_every_kind_of_leak_is_found(tmp_path: Path) -> None:
    key_id = "AKIA" + "ABCDEFGHIJKLMNOP"
    plant(
        tmp_path,
        {
            f"{SITE}/tensorflow/__init__.py": "",
            f"{SITE}/tensorflow_cpu-2.20.0.dist-info/METADATA": "",
            f"{SITE}/riskserve/app/__init__.py": "",
            f"{SITE}/model/__init__.py": "",  # a room installed under its bare name
            f"{SITE}/riskserve-0.1.0.dist-info/entry_points.txt": ENTRY_POINTS,
            "opt/venv/bin/riskserve": "#!/opt/venv/bin/python\n",
            "src/.git/HEAD": "ref: refs/heads/main\n",
            "src/tests/serving/test_rest.py": "",
            "tmp/.aws/credentials": "[default]\n",
            "opt/venv/settings.env": f"AWS_ACCESS_KEY_ID={key_id}\n",
            "etc/ssl/private/server.key": "",
            # Split, so that the repository itself holds no key header.
            "root/deploy.pem": "-----BEGIN RSA " + "PRIVATE KEY-----\n",
        },
    )
    found = scan(tmp_path, ["tests/serving/test_rest.py"])
    assert sorted(found["tensorflow"]) == [
        f"/{SITE}/tensorflow",
        f"/{SITE}/tensorflow_cpu-2.20.0.dist-info",
    ]
    assert found["git"] == ["/src/.git"]
    assert found["tests"] == ["/src/tests/serving/test_rest.py"]
    assert sorted(found["credentials"]) == [
        "/etc/ssl/private/server.key",
        "/opt/venv/settings.env",
        "/root/deploy.pem",
        "/tmp/.aws/credentials",
    ]
    assert found["first_party"] == ["model", "riskserve.app"]
    assert found["broken_commands"] == [
        "/opt/venv/bin/riskserve (riskserve.cli is not in the image)"
    ]


def test_the_scanner_knows_every_room() -> None:
    # image_scan.py runs inside images with the stdlib alone, so it keeps its own copy
    # of the room list: this keeps the copy equal to pyproject.toml's.
    assert set(FIRST_PARTY) == {*ROOMS, "riskserve", "bench"}

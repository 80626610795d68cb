"""image_scan.py run inside an image, plus the image's configured environment."""

from __future__ import annotations

import json
import re

from tests.images.containers import REPO_ROOT, engine, run_once

SCANNER = REPO_ROOT / "tests" / "images" / "image_scan.py"
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)


def repo_test_files() -> list[str]:
    return sorted(
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "tests").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def scan_image(image: str) -> dict[str, list[str]]:
    """The findings of image_scan.py over the whole image (as root, so nothing is
    unreadable), and its environment's variables that look like credentials."""
    result = run_once(
        image,
        [
            "--user",
            "0",
            "--entrypoint",
            "python",
            "-v",
            f"{SCANNER}:/riskserve-scan/image_scan.py:ro",
        ],
        ["/riskserve-scan/image_scan.py", "/", *repo_test_files()],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    env = json.loads(
        engine("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout
    )
    found["credentials"] += [
        f"ENV {v.split('=', 1)[0]}"
        for v in env or []
        if SECRET_NAME.search(v.split("=", 1)[0])
    ]
    return found

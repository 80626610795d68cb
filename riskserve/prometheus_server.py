"""A Prometheus server on loopback that scrapes the local platform's predictors.

Debian's `prometheus` package (`make prometheus`) provides the binary. The scrape
config reads its targets from a file_sd JSON file, which `write_local_targets`
(serving/rollout_prometheus.py) keeps up to date; rule files are loaded when given.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from riskserve.localplatform.processes import ManagedProcess


def prometheus_binary(name: str = "prometheus") -> str:
    found = shutil.which(name)
    if not found:
        raise RuntimeError(
            f"`{name}` is not installed; run `make prometheus` "
            "(apt-get install prometheus)"
        )
    return found


def write_config(
    path: Path,
    targets_file: Path,
    scrape_interval_s: float = 1.0,
    rule_files: list[Path] | None = None,
) -> Path:
    every = f"{round(scrape_interval_s * 1000)}ms"  # Prometheus takes no "0.5s"
    config = {
        "global": {
            "scrape_interval": every,
            "evaluation_interval": every,
        },
        "rule_files": [str(p) for p in rule_files or []],
        "scrape_configs": [
            {
                "job_name": "riskserve-predictors",
                "scrape_timeout": every,
                "file_sd_configs": [
                    {"files": [str(targets_file)], "refresh_interval": "1s"}
                ],
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(
    state_dir: Path,
    port: int,
    targets_file: Path,
    scrape_interval_s: float = 1.0,
    rule_files: list[Path] | None = None,
    host: str = "127.0.0.1",
) -> tuple[ManagedProcess, str]:
    """Start `prometheus` as its own process (TSDB in `state_dir/tsdb`)."""
    if not targets_file.exists():
        targets_file.parent.mkdir(parents=True, exist_ok=True)
        targets_file.write_text("[]")
    config = write_config(
        state_dir / "prometheus.yml", targets_file, scrape_interval_s, rule_files
    )
    process = ManagedProcess(
        name="prometheus",
        argv=[
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={state_dir / 'tsdb'}",
            f"--web.listen-address={host}:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        log_path=state_dir / "logs" / "prometheus.log",
    ).start()
    url = f"http://{host}:{port}"
    process.wait_ready(f"{url}/-/ready", timeout=60)
    return process, url

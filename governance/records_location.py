"""Where the inference log is read from and the decision records live: a folder or
`s3://bucket/prefix`, both through pyarrow's filesystems, so the records are a
pyarrow dataset (`date=YYYY-MM-DD/*.parquet`, hive partitioning) that a query filters
and prunes by day wherever it is.

A records file appears whole or not at all: in a folder it is written under a dot
name (which datasets skip) and renamed; on S3 the object exists only once its upload
completes.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from riskserve.model.s3_client import S3Settings

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
PARTITIONING = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")


class LocationError(ValueError):
    """A log or records location that cannot be read or written; one line."""


@dataclass
class Location:
    """A folder or S3 prefix: `fs` and the `base` path inside it (`bucket/prefix`
    on S3); `where` as the user wrote it, for messages."""

    fs: pafs.FileSystem
    base: str
    where: str

    @property
    def is_s3(self) -> bool:
        return isinstance(self.fs, pafs.S3FileSystem)

    def path(self, *parts: str) -> str:
        return "/".join(p for p in (self.base.rstrip("/"), *parts) if p)

    def _listing(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
        try:
            return self.fs.get_file_info(selector)
        except OSError as exc:
            raise LocationError(f"cannot list {self.where}: {_short(exc)}") from None

    # -- the inference log ---------------------------------------------------------
    def log_files(self, since_day: str | None = None) -> list[str]:
        """The published log files (`<model>/<YYYY-MM-DD>/*.jsonl`), day folders from
        `since_day` on; a spool (`.spool`, `*.seg`) is not the log."""
        files = []
        for model in self._listing(self.base):
            if model.type != pafs.FileType.Directory or model.base_name[:1] == ".":
                continue
            for day in self._listing(model.path):
                if day.type != pafs.FileType.Directory or not DAY.match(day.base_name):
                    continue
                if since_day is not None and day.base_name < since_day:
                    continue
                files += [
                    f.path
                    for f in self._listing(day.path)
                    if f.type == pafs.FileType.File and f.base_name.endswith(".jsonl")
                ]
        return sorted(files)

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as stream:
                return stream.read()
        except OSError as exc:
            raise LocationError(f"cannot read {path}: {_short(exc)}") from None

    # -- the records ---------------------------------------------------------------
    def days(self) -> list[str]:
        """The day partitions present, oldest first."""
        found = []
        for entry in self._listing(self.base):
            match = PARTITION.match(entry.base_name)
            if entry.type == pafs.FileType.Directory and match:
                found.append(match.group(1))
        return sorted(found)

    def day_files(self, day: str) -> list[str]:
        """The records files of a day partition."""
        return sorted(
            f.path
            for f in self._listing(self.path(f"date={day}"))
            if f.type == pafs.FileType.File
            and f.base_name.endswith(".parquet")
            and f.base_name[:1] not in "._"
        )

    def delete_file(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except OSError as exc:
            raise LocationError(f"cannot delete {path}: {_short(exc)}") from None

    def dataset(self, days: list[str] | None = None) -> ds.Dataset | None:
        """The records as a dataset (None when there are none), of `days` only when
        given (their folders alone are listed)."""
        present = self.days()
        wanted = present if days is None else [d for d in days if d in set(present)]
        files = [path for day in wanted for path in self.day_files(day)]
        if not files:
            return None
        try:
            return ds.dataset(
                files,
                format="parquet",
                filesystem=self.fs,
                partitioning=PARTITIONING,
                partition_base_dir=self.base.rstrip("/"),
            )
        except (OSError, pa.ArrowInvalid) as exc:
            raise LocationError(f"cannot read {self.where}: {_short(exc)}") from None

    def write_day(self, day: str, table: pa.Table) -> str:
        """Write `table` as a new file of the day's partition, whole or not at all;
        its path."""
        name = f"part-{uuid.uuid4().hex}.parquet"
        folder = self.path(f"date={day}")
        target = f"{folder}/{name}"
        if self.is_s3:
            # The object exists only once the upload completes.
            with self.fs.open_output_stream(target) as stream:
                pq.write_table(table, stream, compression="zstd")
            return target
        Path(folder).mkdir(parents=True, exist_ok=True)
        temporary = f"{folder}/.{name}.tmp"
        try:
            pq.write_table(table, temporary, compression="zstd")
            _fsync(temporary)
            os.replace(temporary, target)
            _fsync(folder)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def delete_day(self, day: str) -> None:
        try:
            self.fs.delete_dir(self.path(f"date={day}"))
        except OSError as exc:
            raise LocationError(
                f"cannot delete {self.where} date={day}: {_short(exc)}"
            ) from None


def _fsync(path: str) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    """pyarrow's S3 client from the same variables boto3 reads (model/s3_client.py)."""
    kwargs = settings.boto3_client_kwargs()
    options: dict[str, object] = {"region": kwargs.get("region_name", "us-east-1")}
    endpoint = kwargs.get("endpoint_url")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        if not host:
            scheme, host = "https", endpoint
        if scheme == "https" and kwargs.get("verify") is False:
            raise LocationError(
                "S3_VERIFY_SSL=0 over https: pyarrow's S3 client always checks "
                "certificates (give its CA, or use http inside the cluster)"
            )
        options |= {"endpoint_override": host.rstrip("/"), "scheme": scheme}
    if "aws_access_key_id" in kwargs:
        options |= {
            "access_key": kwargs["aws_access_key_id"],
            "secret_key": kwargs.get("aws_secret_access_key", ""),
        }
    return pafs.S3FileSystem(**options)  # type: ignore[arg-type]


def open_location(uri: str, settings: S3Settings) -> Location:
    """A folder (made when written) or `s3://bucket/prefix`."""
    if uri.startswith("s3://"):
        bucket_and_prefix = uri.removeprefix("s3://").strip("/")
        if not bucket_and_prefix:
            raise LocationError(f"{uri}: no bucket")
        return Location(s3_filesystem(settings), bucket_and_prefix, uri)
    if "://" in uri and not uri.startswith("file://"):
        raise LocationError(f"{uri}: give a folder or s3://bucket/prefix")
    folder = Path(uri.removeprefix("file://")).resolve()
    return Location(pafs.LocalFileSystem(), str(folder), uri)


def iter_lines(payload: bytes) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a log file with their 1-based numbers."""
    for number, line in enumerate(payload.split(b"\n"), start=1):
        if line.strip(b"\0 \t\r"):
            yield number, line

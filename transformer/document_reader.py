"""Reading the YAML documents the transformer is configured with (a decision policy,
an experiment): from a local file, a folder holding the document's file, `file://`
or `s3://bucket/key` (a key, or a prefix holding the file), then parsed as a YAML
mapping of at most `max_bytes`. Every failure is the caller's error class with one
line naming the source; the caller's schema checks the mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_document(
    uri: str,
    *,
    file_name: str,
    what: str,
    max_bytes: int,
    error: type[ValueError],
    s3_client: Any = None,
) -> tuple[bytes, Path | None]:
    """The bytes of the document at `uri` (at most `max_bytes + 1` from S3: the
    parser refuses a larger one) and its local file (None on S3), or
    `error("<where>: cannot read the <what> (<why>)")`. `s3_client`: the model
    room's client from `S3Settings()` when None."""
    if uri.startswith("s3://"):
        return _read_s3(uri, file_name, what, max_bytes, error, s3_client), None
    path = Path(uri.removeprefix("file://"))
    if path.is_dir():
        path = path / file_name
    try:
        return path.read_bytes(), path
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None


def _read_s3(
    uri: str,
    file_name: str,
    what: str,
    max_bytes: int,
    error: type[ValueError],
    client: Any,
) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise error(f"{uri}: expected s3://BUCKET/KEY")
    if client is None:
        from riskserve.model.s3_client import S3Settings, s3_client

        client = s3_client(S3Settings())
    if not key.endswith((".yaml", ".yml")):
        key = key.rstrip("/") + "/" + file_name
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
        body: bytes = answer["Body"].read(max_bytes + 1)
        return body
    except Exception as exc:  # botocore's errors carry the reason in their text
        raise error(f"s3://{bucket}/{key}: cannot read the {what} ({exc})") from None


def yaml_mapping(
    text: bytes | str,
    *,
    source: str,
    what: str,
    keys: str,
    max_bytes: int,
    error: type[ValueError],
) -> dict[str, Any]:
    """The YAML mapping in `text`, or `error` in one line: too large, not YAML (with
    its line), or not a mapping (`keys` names what one holds)."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise error(f"{source}: {len(raw)} bytes; {_a(what)} may have {max_bytes}")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(f"{source}:{where}: not YAML ({problem})") from None
    if not isinstance(data, dict):
        raise error(f"{source}: {_a(what)} is a YAML mapping ({keys})")
    return data


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"

"""The hop to the predictor: v2 binary tensors over pooled keep-alive HTTP/1.1.

The connection pool is the idea of the local platform's gateway client
(`localplatform/upstream.py`), copied rather than imported: the transformer room may
not import the platform, and the hop is one request shape to one kind of server, for
which httpx costs more per request than the predictor spends scoring it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np
import orjson
from riskserve.serving.binary_tensors import HEADER_LENGTH
from riskserve.serving.tensors import OutputTensor, decode_raw_input

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PredictorError(Exception):
    """The predictor could not be reached, did not answer in time, or answered with
    something that is not a v2 response. `status` is what the transformer answers."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PredictorAnswer:
    model_version: str | None
    outputs: list[OutputTensor]


class PredictorPool:
    """Idle keep-alive connections to one predictor (`host:port`)."""

    def __init__(
        self,
        predictor_host: str,
        timeout_seconds: float,
        api_key: str | None = None,
        max_idle: int = 64,
    ) -> None:
        host, _, port = predictor_host.rpartition(":")
        if not host or not port.isdigit():
            host, port = predictor_host, "80"
        self.host, self.port = host.strip("[]"), int(port)
        self.timeout = timeout_seconds
        self._authority = f"{self.host}:{self.port}".encode()
        self._auth = (
            [(b"authorization", b"Bearer " + api_key.encode())] if api_key else []
        )
        self._idle: deque[Connection] = deque()
        self._max_idle = max_idle

    async def _connect(self) -> Connection:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), min(self.timeout, 2.0)
            )
        except (OSError, TimeoutError) as exc:
            raise PredictorError(
                f"cannot connect to the predictor at {self.host}:{self.port}: {exc}",
                502,
            ) from None

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await self._connect()
        head = [method.encode(), b" ", target.encode(), b" HTTP/1.1\r\nhost: "]
        head.append(self._authority + b"\r\n")
        for name, value in (*self._auth, *headers):
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        try:
            writer.write(b"".join(head) + body)
            status, response_headers, payload, keep = await asyncio.wait_for(
                _read_response(reader), self.timeout
            )
        except TimeoutError:  # before OSError, of which it is a subclass
            writer.close()
            raise PredictorError(
                f"the predictor did not answer within {self.timeout * 1000:.0f} ms",
                504,
            ) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            if reused:
                # A pooled connection the predictor had closed: once more, fresh.
                return await self.request(method, target, headers, body)
            raise PredictorError(
                f"the predictor closed the connection: {exc!r}", 502
            ) from None
        if keep and len(self._idle) < self._max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, response_headers, payload

    async def infer(
        self, model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        """POST the features (FP32, `[N, 1]` each) as binary tensors, outputs binary."""
        body, json_length = features_request(features, request_id)
        status, headers, payload = await self.request(
            "POST",
            f"/v2/models/{model_name}/infer",
            [
                (b"content-type", b"application/octet-stream"),
                (HEADER_LENGTH, json_length),
            ],
            body,
        )
        if status != 200:
            raise PredictorError(_predictor_message(status, payload), _status(status))
        return parse_response(payload, headers.get(HEADER_LENGTH))

    async def get_json(self, target: str) -> tuple[int, object]:
        status, _, payload = await self.request("GET", target, [], b"")
        try:
            return status, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return status, None

    def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


def features_request(
    features: dict[str, np.ndarray], request_id: str
) -> tuple[bytes, bytes]:
    """A v2 binary request: every feature FP32 `[N, 1]`, all outputs binary."""
    inputs = []
    raw = []
    for name, values in features.items():
        data = values.astype("<f4", copy=False).tobytes()
        inputs.append(
            {
                "name": name,
                "datatype": "FP32",
                "shape": [len(values), 1],
                "parameters": {"binary_data_size": len(data)},
            }
        )
        raw.append(data)
    header = orjson.dumps(
        {"id": request_id, "inputs": inputs, "parameters": {"binary_data_output": True}}
    )
    return header + b"".join(raw), str(len(header)).encode()


def parse_response(payload: bytes, header_length: bytes | None) -> PredictorAnswer:
    """A v2 response, JSON or with binary outputs."""
    try:
        length = int(header_length) if header_length is not None else len(payload)
        header = orjson.loads(payload[:length])
        offset = length
        outputs = []
        for item in header["outputs"]:
            name, datatype, shape = item["name"], item["datatype"], item["shape"]
            size = (item.get("parameters") or {}).get("binary_data_size")
            if size is None:
                array = np.asarray(item["data"])
                if datatype == "BYTES":
                    array = array.astype(object)
                outputs.append(OutputTensor(name, datatype, array.reshape(shape)))
                continue
            raw = payload[offset : offset + size]
            offset += size
            tensor = decode_raw_input(name, datatype, tuple(shape), raw)
            outputs.append(OutputTensor(name, datatype, tensor.array))
        version = header.get("model_version")
        return PredictorAnswer(str(version) if version is not None else None, outputs)
    except Exception as exc:  # anything malformed: the predictor's fault, not ours
        raise PredictorError(
            f"the predictor's answer is not a v2 response: {exc!r}", 502
        ) from None


def _status(predictor_status: int) -> int:
    # The features are the transformer's own work, so a 400, 401 or 404 from the
    # predictor is a fault of the hop (a wrong model or key behind it): 502. A
    # predictor still loading is a 503, as the transformer's caller should retry.
    return 503 if predictor_status == 503 else 502


def _predictor_message(status: int, payload: bytes) -> str:
    try:
        error = orjson.loads(payload).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    text = str(error) if error else payload[:200].decode("utf-8", "replace")
    return f"the predictor answered {status}: {text[:300]}"


async def _read_response(
    reader: asyncio.StreamReader,
) -> tuple[int, dict[bytes, bytes], bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = value
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.lower() != b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep = False
    return status, headers, body, keep

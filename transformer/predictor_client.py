"""The hop to the predictor: v2 binary tensors over the shared pooled keep-alive
HTTP/1.1 client (`serving/keepalive_client.py`, which the gateway's hop uses too).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from riskserve.serving.binary_tensors import HEADER_LENGTH
from riskserve.serving.keepalive_client import (
    Headers,
    KeepAliveError,
    KeepAlivePool,
    header,
)
from riskserve.serving.tensors import (
    NUMPY_DTYPES,
    OutputTensor,
    decode_raw_input,
    encode_raw,
)
from riskserve.transformer.predictor_routes import DirectRoutes

_INFER_HEADERS = [(b"content-type", b"application/octet-stream")]


class PredictorError(Exception):
    """The predictor could not be reached, did not answer in time, or answered with
    something that is not a v2 response. `status` is what the transformer answers."""

    def __init__(self, message: str, status: int, connect_failed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.connect_failed = connect_failed  # provably not processed


@dataclass(frozen=True)
class PredictorAnswer:
    model_version: str | None
    outputs: list[OutputTensor]


class PredictorPool:
    """Idle keep-alive connections to one predictor (`host:port`); every request
    bounded by `timeout_seconds` (connecting by at most 2 s of it)."""

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
        self.api_key = api_key  # for a pool to another predictor (experiment arms)
        self.routes: DirectRoutes | None = None  # the local platform's direct routes
        self._pool = KeepAlivePool(
            self.host,
            self.port,
            max_idle=max_idle,
            connect_timeout=min(timeout_seconds, 2.0),
            label=f"the predictor at {self.host}:{self.port}",
            default_headers=(
                [(b"authorization", b"Bearer " + api_key.encode())] if api_key else []
            ),
        )

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        try:
            return await self._pool.request(method, target, headers, body, self.timeout)
        except KeepAliveError as exc:
            # Not answered in time: 504; not reached, or the connection broke: 502.
            raise PredictorError(
                exc.message, 504 if exc.timed_out else 502, exc.connect_failed
            ) from None

    async def infer(
        self, model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        """POST the features as binary tensors (`[N, 1]` each: numbers as FP32, an
        object array as BYTES), outputs binary."""
        body, json_length = features_request(features, request_id)
        status, headers, payload = await self._post_infer(
            model_name,
            f"/v2/models/{model_name}/infer",
            [*_INFER_HEADERS, (HEADER_LENGTH, json_length)],
            body,
        )
        if status != 200:
            raise PredictorError(_predictor_message(status, payload), _status(status))
        return parse_response(payload, header(headers, HEADER_LENGTH))

    async def _post_infer(
        self, model_name: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        """To the model's direct route when the local platform names one
        (`predictor_routes.py`), else (or when it cannot be reached, or has no such
        model: not processed either way) to the predictor host."""
        direct = self.routes.pool(model_name) if self.routes is not None else None
        if direct is not None:
            assert isinstance(direct, PredictorPool)
            try:
                answer = await direct.request("POST", target, headers, body)
            except PredictorError as exc:
                if not exc.connect_failed:
                    raise
            else:
                if answer[0] != 404:
                    return answer
            assert self.routes is not None
            self.routes.forget(model_name)
        return await self.request("POST", target, headers, body)

    def route_directly(self, routes_file: Path, poll_seconds: float = 0.1) -> None:
        """Follow the local platform's routes file (`predictor_routes.py`); call on
        the event loop."""
        self.routes = DirectRoutes(
            routes_file,
            lambda address: PredictorPool(address, self.timeout, self.api_key),
            poll_seconds,
        )
        self.routes.start()

    async def get_json(self, target: str) -> tuple[int, object]:
        status, _, payload = await self.request("GET", target, [], b"")
        try:
            return status, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return status, None

    def close(self) -> None:
        self._pool.close()
        if self.routes is not None:
            self.routes.close()


def features_request(
    features: dict[str, np.ndarray], request_id: str
) -> tuple[bytes, bytes]:
    """A v2 binary request: every feature `[N, 1]`, FP32 (an object array, such as
    credit's `merchant_group`, BYTES), all outputs binary."""
    rows = {len(values) for values in features.values()}
    if len(rows) != 1:
        raise ValueError(f"the features have different lengths: {sorted(rows)}")
    if any(values.dtype == object for values in features.values()):
        return _mixed_request(features, request_id, rows.pop())
    before_id, after_id = _request_header(tuple(features), rows.pop())
    header = before_id + orjson.dumps(request_id) + after_id
    data = b"".join(v.astype("<f4", copy=False).tobytes() for v in features.values())
    return header + data, str(len(header)).encode()


def _mixed_request(
    features: dict[str, np.ndarray], request_id: str, rows: int
) -> tuple[bytes, bytes]:
    """A request with BYTES among its inputs: a BYTES tensor's size depends on its
    strings, so its header is built for every request."""
    described = []
    raw = []
    for name, values in features.items():
        is_bytes = values.dtype == object
        data = encode_raw(values) if is_bytes else values.astype("<f4").tobytes()
        described.append(
            {
                "name": name,
                "datatype": "BYTES" if is_bytes else "FP32",
                "shape": [rows, 1],
                "parameters": {"binary_data_size": len(data)},
            }
        )
        raw.append(data)
    head = orjson.dumps(
        {
            "id": request_id,
            "inputs": described,
            "parameters": {"binary_data_output": True},
        }
    )
    return head + b"".join(raw), str(len(head)).encode()


@functools.lru_cache(maxsize=128)
def _request_header(names: tuple[str, ...], rows: int) -> tuple[bytes, bytes]:
    """The request's JSON header for these features and rows, cut where the id goes:
    built once, as a request differs from the one before only in its id (building
    it with orjson every time was a tenth of the hop's own cost)."""
    header = orjson.dumps(
        {
            "id": "",
            "inputs": [
                {
                    "name": name,
                    "datatype": "FP32",
                    "shape": [rows, 1],
                    "parameters": {"binary_data_size": 4 * rows},
                }
                for name in names
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    cut = header.index(b'""')
    return header[:cut], header[cut + 2 :]


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
            outputs.append(OutputTensor(name, datatype, _binary_output(item, raw)))
        version = header.get("model_version")
        return PredictorAnswer(str(version) if version is not None else None, outputs)
    except Exception as exc:  # anything malformed: the predictor's fault, not ours
        raise PredictorError(
            f"the predictor's answer is not a v2 response: {exc!r}", 502
        ) from None


def _binary_output(item: dict, raw: bytes) -> np.ndarray:
    """One binary output of the predictor. Numbers straight from the buffer (the
    predictor's strict decoder, which checks every client's header, cost 30 us an
    output, a tenth of the hop); a wrong size still raises, and BYTES go through it."""
    name, datatype, shape = item["name"], item["datatype"], tuple(item["shape"])
    dtype = _LITTLE_ENDIAN.get(datatype)
    if dtype is None:
        return decode_raw_input(name, datatype, shape, raw).array
    return (
        np.frombuffer(raw, dtype)
        .astype(dtype.newbyteorder("="), copy=False)
        .reshape(shape)
    )


_LITTLE_ENDIAN = {
    datatype: np.dtype(numpy_type).newbyteorder("<")
    for datatype, numpy_type in NUMPY_DTYPES.items()
    if datatype != "BYTES"
}


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

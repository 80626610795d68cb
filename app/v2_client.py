"""A small client of the v2 Open Inference Protocol, for one model behind one URL.

It reads the model's metadata (input names and datatypes, decision parameters), builds
inference requests from it, checks every status and turns each failure into one
sentence an analyst can act on. It knows nothing about the UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import httpx

REVISION_HEADER = "x-riskserve-revision"
_INTEGER_TYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


class EndpointError(Exception):
    """A call to a model failed; `str(error)` is a plain-words sentence."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InputTensor(TypedDict):
    """One input tensor of a v2 inference request, as JSON."""

    name: str
    datatype: str
    shape: list[int]
    data: list[object]


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    """What `GET /v2/models/<name>` says about a model."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)
    raw_inputs: Mapping[str, str] = field(default_factory=dict)
    """A transformer's raw inputs and what each is (its metadata's
    `parameters.raw_inputs`); empty for a bare predictor."""

    @classmethod
    def from_json(cls, body: object) -> ModelMetadata:
        if not isinstance(body, dict):
            raise ValueError("the metadata is not a JSON object")

        def tensors(key: str) -> tuple[TensorMetadata, ...]:
            items = body.get(key)
            if not isinstance(items, list):
                raise ValueError(f"the metadata has no {key!r} list")
            return tuple(
                TensorMetadata(
                    str(item["name"]),
                    str(item["datatype"]),
                    tuple(int(d) for d in item.get("shape", [])),
                )
                for item in items
            )

        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError("the metadata's 'parameters' is not an object")
        raw = parameters.get("raw_inputs")
        raw_inputs = (
            {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        )
        return cls(
            name=str(body.get("name", "")),
            versions=tuple(str(v) for v in body.get("versions") or ()),
            platform=str(body.get("platform", "")),
            inputs=tensors("inputs"),
            outputs=tensors("outputs"),
            parameters={
                str(k): str(v) for k, v in parameters.items() if k != "raw_inputs"
            },
            raw_inputs=raw_inputs,
        )

    @property
    def takes_raw_events(self) -> bool:
        """A transformer in front of the predictor: the inputs are a raw event (a
        card transaction, a checkout), not the model's features."""
        return bool(self.raw_inputs)

    @property
    def input_names(self) -> list[str]:
        return [tensor.name for tensor in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [tensor.name for tensor in self.outputs]

    def parameter(self, key: str) -> float | None:
        """A numeric decision parameter (threshold, cutoff, base_score...), if present."""
        try:
            value = float(self.parameters[key])
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) else None


@dataclass(frozen=True)
class InferenceResult:
    """The outputs of one inference call, one list per output, one value per row (a
    list of K values per row for an [N, K] output such as `reason_codes`)."""

    model_name: str
    model_version: str
    revision: str | None
    outputs: Mapping[str, list]

    @property
    def rows(self) -> int:
        return len(next(iter(self.outputs.values()), []))


class V2Client:
    """Talks v2 REST to the model at `model_url` (`<base>/v2/models/<name>`)."""

    def __init__(
        self,
        label: str,
        model_url: str,
        api_key: str | None = None,
        connect_timeout: float = 3.0,
        request_timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.label = label
        self.model_url = model_url.rstrip("/")
        self.request_timeout = request_timeout
        headers = {"accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._metadata: ModelMetadata | None = None
        self._api_key = api_key

    def close(self) -> None:
        self._http.close()

    # -- calls ------------------------------------------------------------------------
    def metadata(self, refresh: bool = False) -> ModelMetadata:
        """The model's metadata, fetched once and kept until `refresh`."""
        if self._metadata is None or refresh:
            body, _ = self._call("GET", self.model_url)
            try:
                self._metadata = ModelMetadata.from_json(body)
            except (KeyError, TypeError, ValueError) as exc:
                raise EndpointError(
                    f"The {self.label} model at {self.model_url} sent metadata this app "
                    f"cannot read ({exc})."
                ) from None
        return self._metadata

    def infer(self, columns: Mapping[str, Sequence[object]]) -> InferenceResult:
        """Score rows given as one column per input name (None for a missing value)."""
        metadata = self.metadata()
        body = {"inputs": build_inputs(metadata, columns)}
        answer, headers = self._call("POST", f"{self.model_url}/infer", body)
        try:
            result = parse_response(answer, headers.get(REVISION_HEADER))
        except (KeyError, TypeError, ValueError) as exc:
            raise EndpointError(
                f"The {self.label} model answered with something that is not a v2 "
                f"inference response ({exc})."
            ) from None
        rows = len(next(iter(body["inputs"]))["data"]) if body["inputs"] else 0
        for name, values in result.outputs.items():
            if len(values) != rows:
                raise EndpointError(
                    f"The {self.label} model returned {len(values)} values of {name} "
                    f"for {rows} rows."
                )
        return result

    def _call(
        self, method: str, url: str, body: object | None = None
    ) -> tuple[object, httpx.Headers]:
        try:
            response = self._http.request(method, url, json=body)
        except httpx.TimeoutException:
            raise EndpointError(
                f"The {self.label} model at {self.model_url} did not answer within "
                f"{self.request_timeout:g} s. Try again, or with fewer rows."
            ) from None
        except httpx.HTTPError as exc:
            raise EndpointError(
                f"The {self.label} model at {self.model_url} cannot be reached "
                f"({_reason(exc)}). Is its predictor running?"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code == 200 and payload is not None:
            return payload, response.headers
        message = _server_message(payload, response, self._api_key)
        status = response.status_code
        if status == 400:
            text = f"The {self.label} model rejected the request: {message}"
        elif status == 401:
            text = (
                f"The {self.label} model needs a valid API key (401: {message}). "
                "Set RISKSERVE_APP_API_KEY."
            )
        elif status == 404:
            text = f"The {self.label} model was not found at {url} (404: {message})."
        elif status == 503:
            text = (
                f"The {self.label} model is not ready yet (503: {message}). "
                "Try again in a moment."
            )
        elif status == 200:
            text = f"The {self.label} model answered with something that is not JSON."
        else:
            text = f"The {self.label} model failed with HTTP {status}: {message}"
        raise EndpointError(text, status)


def build_inputs(
    metadata: ModelMetadata, columns: Mapping[str, Sequence[object]]
) -> list[InputTensor]:
    """One `[N, 1]` tensor per declared input, with the datatype the model declares."""
    missing = [name for name in metadata.input_names if name not in columns]
    if missing:
        raise EndpointError(
            f"Values are missing for {', '.join(missing)}, which model "
            f"{metadata.name} needs."
        )
    rows = {len(columns[name]) for name in metadata.input_names}
    if len(rows) > 1:
        raise EndpointError("The columns do not all have the same number of rows.")
    count = rows.pop() if rows else 0
    inputs: list[InputTensor] = []
    for tensor in metadata.inputs:
        values = columns[tensor.name]
        if tensor.datatype == "BYTES":
            data: list[object] = ["" if v is None else str(v) for v in values]
        elif tensor.datatype == "BOOL":
            data = [None if v is None else bool(v) for v in values]
        elif tensor.datatype in _INTEGER_TYPES:
            data = [None if v is None else int(v) for v in values]  # type: ignore[call-overload]
        else:
            data = [_number(v) for v in values]
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": [count, 1],
                "data": data,
            }
        )
    return inputs


def parse_response(body: object, revision: str | None) -> InferenceResult:
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        raise ValueError("no 'outputs' list")
    outputs: dict[str, list] = {}
    for item in body["outputs"]:
        data = item["data"]
        if not isinstance(data, list):
            raise ValueError(f"output {item['name']!r} has no data list")
        outputs[str(item["name"])] = _rows(_flatten(data), item.get("shape"))
    return InferenceResult(
        model_name=str(body.get("model_name", "")),
        model_version=str(body.get("model_version", "")),
        revision=revision,
        outputs=outputs,
    )


def _number(value: object) -> float | None:
    """JSON has no NaN: a missing value travels as null, which the graph imputes."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _rows(values: list, shape: object) -> list:
    """One value per row; an [N, K] output (K > 1, e.g. `reason_codes`) gives one
    list of K values per row."""
    if isinstance(shape, list) and len(shape) == 2 and shape[1] not in (0, 1):
        width = int(shape[1])
        if len(values) != int(shape[0]) * width:
            raise ValueError(f"shape {shape} does not match {len(values)} values")
        return [values[i : i + width] for i in range(0, len(values), width)]
    return values


def _flatten(data: list) -> list:
    if data and isinstance(data[0], list):
        return [value for row in data for value in _flatten(row)]
    return data


def _server_message(
    payload: object, response: httpx.Response, api_key: str | None = None
) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = payload["error"]
    else:
        text = response.text.strip().splitlines()
        message = text[0][:200] if text else response.reason_phrase or "no message"
    # The page never shows a server's stack trace, nor our key echoed back.
    if "Traceback (most recent call last)" in message or 'File "' in message:
        message = "the server sent a stack trace (not shown)"
    if api_key:
        message = message.replace(api_key, "***")
    return message


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown"
    return type(exc).__name__

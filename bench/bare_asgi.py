"""The floor: a bare ASGI handler that parses v2 JSON and calls onnxruntime.

No validation, no metrics, no auth: the least any Python v2 server over the same
session can do per request.

    python -m bench.bare_asgi --model_dir DIR --http_port 8080
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn

_V2 = {"tensor(float)": "FP32", "tensor(bool)": "BOOL", "tensor(string)": "BYTES"}


def build_app(model_dir: str):  # noqa: ANN201 - an ASGI callable
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = next(Path(model_dir).rglob("*.onnx"))
    session = ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    output_types = [_V2[node.type] for node in session.get_outputs()]
    output_names = [node.name for node in session.get_outputs()]
    headers = [(b"content-type", b"application/json")]

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] != "http":
            return
        if scope["path"] == "/ready":
            body = b"{}"
        else:
            message = await receive()
            chunks = [message.get("body", b"")]
            while message.get("more_body"):
                message = await receive()
                chunks.append(message.get("body", b""))
            request = orjson.loads(b"".join(chunks))
            feeds = {
                item["name"]: np.asarray(item["data"], dtype=np.float32).reshape(
                    item["shape"]
                )
                for item in request["inputs"]
            }
            results = session.run(output_names, feeds)
            body = orjson.dumps(
                {
                    "model_name": "fraud",
                    "outputs": [
                        {"name": n, "datatype": t, "shape": list(r.shape), "data": r}
                        for n, t, r in zip(
                            output_names, output_types, results, strict=True
                        )
                    ],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--http_port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.model_dir),
        host="127.0.0.1",
        port=args.http_port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

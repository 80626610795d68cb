"""The stock baseline: a plain `kserve.Model` over onnxruntime, as KServe's docs write a
custom model, served by KServe's own `ModelServer` with its defaults.

    python -m bench.stock_kserve --model_name fraud --model_dir DIR --http_port 8080
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kserve
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid

_V2 = {"tensor(float)": "FP32", "tensor(bool)": "BOOL", "tensor(string)": "BYTES"}


class OnnxModel(kserve.Model):
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.session: ort.InferenceSession | None = None

    def load(self) -> bool:
        path = next(Path(self.model_dir).rglob("*.onnx"))
        self.session = ort.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict | None = None
    ) -> InferResponse:
        feeds = {item.name: item.as_numpy() for item in payload.inputs}
        results = self.session.run(None, feeds)
        outputs = [
            InferOutput(
                name=node.name,
                shape=list(result.shape),
                datatype=_V2[node.type],
                data=result,
            )
            for node, result in zip(self.session.get_outputs(), results, strict=True)
        ]
        return InferResponse(
            model_name=self.name,
            infer_outputs=outputs,
            response_id=payload.id or generate_uuid(),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])

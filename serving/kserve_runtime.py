"""The same model as a `kserve.Model`, for KServe's stock ModelServer.

`python -m riskserve.serving --server kserve ...` runs it: KServe's FastAPI REST server, its gRPC
server and its metrics, with this runtime's model loading and input checks. It is the
compatibility path (anything KServe's server offers that the lean server does not);
it is about 5x slower per request and starts seconds later, see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.errors import ModelNotReady
from kserve.utils.utils import generate_uuid
from riskserve.serving.errors import InvalidInput, NotReady
from riskserve.serving.loading import load_model
from riskserve.serving.model import OnnxRiskModel
from riskserve.serving.settings import ServingSettings, StorageSettings
from riskserve.serving.tensors import decode_values

log = logging.getLogger("riskserve.serving.kserve_runtime")


class RiskModel(kserve.Model):
    """load() fetches and opens the ONNX model; predict() scores an InferRequest."""

    def __init__(
        self,
        name: str,
        model_dir: str,
        settings: ServingSettings,
        storage: StorageSettings,
    ) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.settings = settings
        self.storage = storage
        self.runtime: OnnxRiskModel | None = None

    def load(self) -> bool:
        self.runtime = load_model(
            self.name, self.model_dir, self.settings, self.storage
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        if self.runtime is None:
            raise ModelNotReady(self.name)
        try:
            tensors = [
                decode_values(
                    item.name, item.datatype, tuple(item.shape), item.as_numpy().ravel()
                )
                for item in payload.inputs
            ]
            requested = [o.name for o in payload.request_outputs or []] or None
            outputs, _ = self.runtime.predict(tensors, requested)
        except InvalidInput as error:
            raise KServeInvalidInput(error.message) from error
        except NotReady as error:
            raise ModelNotReady(self.name, error.message) from error
        return InferResponse(
            model_name=self.name,
            model_version=self.runtime.version,
            response_id=payload.id or generate_uuid(),
            infer_outputs=[
                InferOutput(
                    name=t.name, shape=t.shape, datatype=t.datatype, data=t.array
                )
                for t in outputs
            ],
        )


def run_kserve(
    args: argparse.Namespace, settings: ServingSettings, storage: StorageSettings
) -> int:
    model = RiskModel(args.model_name, args.model_dir, settings, storage)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
    ).start([model])
    return 0

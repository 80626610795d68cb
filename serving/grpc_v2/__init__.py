"""Python stubs generated from the v2 Open Inference Protocol's gRPC spec.

Regenerate with `python -m riskserve.serving.grpc_v2.generate`; a test fails when they drift from
`third_party/kserve/open-inference-protocol/grpc_predict_v2.proto`. Generated here rather
than borrowed from `kserve.protocol.grpc`, because importing anything under `kserve`
runs its package __init__ (pandas, FastAPI, the Kubernetes client: ~2-4 s and ~200 MB).
"""

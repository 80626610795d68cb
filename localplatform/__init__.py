"""The local platform: InferenceService YAML on one machine (controller, revisions as
predictor processes, the gateway with KServe's canary semantics)."""

"""The credit scorecard: optimal bins (`bins`), their ONNX lookup (`graph`), the
scorecard as a competing candidate (`candidate`), the adverse-action reason codes it
gives every credit winner (`reason_codes`), and that stage of a job (`stage`)."""

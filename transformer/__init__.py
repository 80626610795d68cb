"""The transformer: KServe's `spec.transformer` in front of the fraud predictor.

A raw card transaction comes in as v2 tensors (`riskserve.transformer.raw_request`),
its features come from the Feast online store and the on-demand view
(`riskserve.features.online.lookup`), the predictor is called over v2 with binary
tensors on a keep-alive connection (`riskserve.transformer.predictor_client`), the
answer is the predictor's outputs plus the features used, and the card's new state is
pushed after the answer has left (`riskserve.transformer.features_source`).
"""

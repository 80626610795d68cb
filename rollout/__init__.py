"""Canary rollouts: steps, gates (error rate, p99, score PSI) and backends (the local
platform through its client, KServe through the Kubernetes API)."""

"""costwarden: real-time cost guardrails for GPU workloads on Kubernetes."""

__version__ = "0.1.0"

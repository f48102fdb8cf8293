"""The imperative shell: kopf handlers, the Kubernetes API wrapper, metrics, and the loops."""

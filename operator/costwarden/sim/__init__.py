"""A Kubernetes API stand-in (built on kmock) for running the real operator and kubectl in tests."""

"""The component tests' fixtures (a stand-in with the CRD, a ManualClock, the real operator)."""

from tests.component.conftest import clock, cluster, crd, start_operator

__all__ = ["clock", "cluster", "crd", "start_operator"]

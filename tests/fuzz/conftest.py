"""The component fixtures (a stand-in cluster, a manual clock, the real operator) for the fuzz
suite's end-to-end check."""

from tests.component.conftest import clock, cluster, crd, start_operator  # noqa: F401

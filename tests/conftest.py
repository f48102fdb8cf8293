from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurm_cluster import SlurmCluster, SlurmUnavailable, slurm_binaries


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A real single-node Slurm (Debian's packages, installed when missing: see
    tests/slurm_cluster.py), started once for the session with ``SLURM_CONF`` exported to the test
    process, and stopped at its end. Under CI a Slurm that is missing or does not start fails the
    test with the reason; elsewhere it skips with the reason."""
    try:
        cluster = SlurmCluster(slurm_binaries()).start()
    except SlurmUnavailable as exc:
        message = f"no Slurm for the Slurm tests: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's Slurm, every job cancelled after the test (a free node for the next one)."""
    yield slurm_cluster
    slurm_cluster.cancel_all()

"""Running the real kubectl (from `make tools`, path in $KUBECTL) against a kubeconfig."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

KUBECTL = os.environ.get("KUBECTL", "")

needs_kubectl = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        not KUBECTL or not Path(KUBECTL).is_file(), reason="KUBECTL is not set to a kubectl binary"
    ),
]


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


def table(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells, cut at the header's column starts: a header may
    have a space in it (`VM SPEND`) and a cell may be empty (kubectl pads columns by 3 spaces)."""
    lines = output.strip().splitlines()
    if not lines:
        return []
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", lines[0])]
    ends = [*starts[1:], None]
    return [[line[start:end].strip() for start, end in zip(starts, ends, strict=True)] for line in lines]

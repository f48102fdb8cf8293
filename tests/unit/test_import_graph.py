"""costwarden's import graph: no cycles, and the operator loads none of the optional commands.

grimp (import-linter's graph) records every import, also those inside functions and under
TYPE_CHECKING, so a cycle hidden in a function body counts here as it does at run time. The static
contracts in pyproject.toml cannot see ``importlib.import_module`` by name, which is how the CLI
loads its optional commands; the last tests import the operator and parse `costwarden run` in a
fresh interpreter and look at what got loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]

# What the image leaves out: the stand-in, the demo, `costwarden top`, and their libraries. Not
# jsonschema: in this venv kopf imports the kubernetes client, which imports the dev tool
# kubernetes-validate, which imports jsonschema. tests/chart/test_image.py checks without dev tools.
NOT_IN_THE_IMAGE = {"costwarden.sim", "costwarden.demo", "costwarden.top", "kmock", "celpy", "matplotlib"}
NOT_IN_THE_IMAGE |= {"rich", "numpy", "PIL"}


def import_cycles(graph: grimp.ImportGraph, modules: Iterable[str]) -> list[list[str]]:
    """The strongly connected groups of two or more ``modules`` (each sorted; the list sorted)."""
    seen: set[str] = set()
    cycles: list[list[str]] = []
    for module in sorted(modules):
        if module in seen:
            continue
        group = {module} | (graph.find_upstream_modules(module) & graph.find_downstream_modules(module))
        seen |= group
        if len(group) > 1:
            cycles.append(sorted(group))
    return cycles


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    members = set(cycle)
    lines = [f"cycle among {', '.join(cycle)}:"]
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            where = ", ".join(
                f"l.{d['line_number']} `{d['line_contents']}`"
                for d in graph.get_import_details(importer=importer, imported=imported)
            )
            lines.append(f"  {importer} -> {imported} ({where})")
    return "\n".join(lines)


def test_costwarden_has_no_import_cycles() -> None:
    graph = grimp.build_graph("costwarden", cache_dir=None)
    cycles = import_cycles(graph, graph.modules)
    assert not cycles, "\n".join(describe(graph, cycle) for cycle in cycles)


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b", line_number=3, line_contents="import pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c", line_number=4, line_contents="import pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a", line_number=9, line_contents="    import pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.d", line_number=5, line_contents="import pkg.d")
    assert import_cycles(graph, graph.modules) == [["pkg.a", "pkg.b", "pkg.c"]]
    text = describe(graph, ["pkg.a", "pkg.b", "pkg.c"])
    assert "pkg.c -> pkg.a (l.9 `    import pkg.a`)" in text
    graph.remove_import(importer="pkg.c", imported="pkg.a")
    assert import_cycles(graph, graph.modules) == []


def loaded_after(code: str) -> set[str]:
    """The top-level names and costwarden packages in sys.modules after ``code`` runs in a new interpreter."""
    probe = (
        f"{code}\nimport json, sys\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "names |= {'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('costwarden.')}\n"
        "print(json.dumps(sorted(names)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_operator_and_costwarden_run_load_nothing_the_image_leaves_out() -> None:
    loaded = loaded_after(
        "import costwarden.operator.app\n"
        "import contextlib, io\n"
        "from costwarden.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])\n"
    )
    assert "costwarden.operator" in loaded and "kopf" in loaded
    assert not loaded & NOT_IN_THE_IMAGE, sorted(loaded & NOT_IN_THE_IMAGE)


def test_an_optional_command_loads_only_when_it_runs() -> None:
    loaded = loaded_after("from costwarden.cli import build_parser\nbuild_parser(load=['sim'])")
    assert "costwarden.sim" in loaded and "kmock" in loaded
    assert not loaded & {"costwarden.demo", "costwarden.top", "matplotlib", "rich"}

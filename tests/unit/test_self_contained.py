"""The repository explains itself: no file points outside it, every link and docs page named
resolves, and docs/ names only contracts, import rules and flags that exist."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from costwarden import models, records
from costwarden.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
DESIGN = ROOT / "docs" / "design.md"
# Notes that lived outside the repository; spelled in parts so this file does not name them.
OUTSIDE = ("../" + "shared", "DESIGN" + ".md", "REFERENCE" + ".md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS_PAGE = re.compile(r"(?<![\w./-])docs/[\w-]+\.md")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
# Other programs' flags the docs quote: etcd's (docs/ledger.md); Slurm's sbatch, scancel and the
# client commands' (docs/slurm.md); kube-apiserver's admission configuration (docs/security.md).
FOREIGN_FLAGS = frozenset(
    {
        "--max-request-bytes",
        "--clusters",
        "--signal",
        "--full",
        "--name",
        "--job-name",
        "--jobs",
        "--admission-control-config-file",
    }
)
SKIPPED_DIRS = frozenset({".git", ".venv", ".tools", "out", "build", "dist", "__pycache__"})


def _tracked() -> list[Path]:
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        return [ROOT / name for name in listed.decode().split("\0") if name]
    return [p for p in ROOT.rglob("*") if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)]


def _text_files() -> Iterator[tuple[Path, str]]:
    for path in _tracked():
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            yield path, data.decode("utf-8", "replace")


def test_no_file_refers_to_notes_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, text in _text_files()
        for number, line in enumerate(text.splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert hits == []


@pytest.mark.parametrize("page", [*DOCS, ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    targets = [t for t in LINK.findall(page.read_text()) if not re.match(r"^[a-z][a-z+.-]*:|^#", t)]
    missing = [t for t in targets if not (page.parent / t.split("#", 1)[0]).resolve().exists()]
    assert missing == []
    assert all((page.parent / t.split("#", 1)[0]).resolve().is_relative_to(ROOT) for t in targets)


def test_every_docs_page_named_anywhere_exists() -> None:
    named = {
        (path.relative_to(ROOT), page) for path, text in _text_files() for page in DOCS_PAGE.findall(text)
    }
    assert named, "code and docs name docs pages"
    assert [(str(path), page) for path, page in sorted(named) if not (ROOT / page).is_file()] == []


def test_design_names_every_import_contract() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    ids = {contract["id"] for contract in contracts}
    assert ids
    assert {i for i in ids if f"`{i}`" not in DESIGN.read_text()} == set()


def test_design_states_the_contract_names() -> None:
    text = DESIGN.read_text()
    names = [models.GROUP, models.VERSION, models.KIND, models.PLURAL, models.SINGULAR, models.SHORT_NAME]
    names += [value for key, value in vars(records).items() if key.startswith("ANNOTATION_")]
    names += ["costwarden_", "packedPods", "closedSpend"]
    assert [name for name in names if not re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w-])", text)] == []


def _options(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)


def _run_parser() -> argparse.ArgumentParser:
    (commands,) = [a for a in build_parser(load=())._actions if isinstance(a, argparse._SubParsersAction)]
    parser: argparse.ArgumentParser = commands.choices["run"]
    return parser


def test_docs_name_only_flags_the_command_line_has() -> None:
    known = set(_options(build_parser())) | FOREIGN_FLAGS
    named = {flag for page in DOCS for flag in FLAG.findall(page.read_text())}
    assert named - known == set()


def test_design_lists_every_flag_of_run() -> None:
    flags = {flag for flag in _options(_run_parser()) if flag.startswith("--") and flag != "--help"}
    assert flags
    assert {flag for flag in flags if f"`{flag}`" not in DESIGN.read_text()} == set()

"""Write a Helm chart's README.md from the `# --` comments in its values.yaml (helm-docs style).

helm-docs is a Go binary this project cannot install, so this is the small part of it we use:

    # -- What the value does; more lines of `#` continue the text.
    # @default -- text shown instead of the literal default
    key: value

A `# --` block documents the key right below it; nested keys are named by their dotted path.
README.md is README.md.tmpl with `{{ values_table }}` and `{{ name }}`-style Chart.yaml fields
filled in.

    python tools/chart_readme.py [--check] [CHART_DIR]    (default charts/costwarden)

`--check` writes nothing and exits 1 when README.md is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+|\"[^\"]+\"):(?:\s|$)")
DESCRIPTION = "# -- "
DEFAULT = "# @default -- "
PLACEHOLDER = re.compile(r"\{\{ *(\w+) *\}\}")


@dataclass(frozen=True)
class ValueDoc:
    path: str
    type: str
    default: str
    description: str


def parse_values(text: str) -> list[ValueDoc]:
    """Every documented key of a values.yaml, in file order."""
    values = yaml.safe_load(text) or {}
    docs: list[ValueDoc] = []
    for path, description, default_text in _documented_keys(text):
        value = _lookup(values, path)
        shown = f"`{_json(value)}`" if default_text is None else default_text
        docs.append(ValueDoc(path, _type_name(value), shown, description))
    return docs


def undocumented(text: str) -> list[str]:
    """Dotted paths of leaf values with no `# --` comment on them or on an enclosing key."""
    documented = {path for path, _, _ in _documented_keys(text)}
    values = yaml.safe_load(text) or {}
    return [
        path
        for path in _leaf_paths(values)
        if not any(path == d or path.startswith(d + ".") for d in documented)
    ]


def render(chart_dir: Path) -> str:
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    template = (chart_dir / "README.md.tmpl").read_text()
    fields = {key: str(value) for key, value in chart.items() if isinstance(value, str | int | float)}
    fields["values_table"] = values_table(parse_values((chart_dir / "values.yaml").read_text()))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise KeyError(f"README.md.tmpl names {{{{ {name} }}}}, which Chart.yaml does not have")
        return fields[name]

    return PLACEHOLDER.sub(fill, template)


def values_table(docs: list[ValueDoc]) -> str:
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for doc in docs:
        cells = (f"`{doc.path}`", doc.type, doc.default, doc.description)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def _documented_keys(text: str) -> Iterator[tuple[str, str, str | None]]:
    stack: list[tuple[int, str]] = []
    description: list[str] | None = None
    default_text: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(DESCRIPTION.rstrip()):
            description = [stripped[len(DESCRIPTION) :].strip()]
            default_text = None
            continue
        if stripped.startswith(DEFAULT.rstrip()):
            default_text = stripped[len(DEFAULT) :].strip()
            continue
        if stripped.startswith("#"):
            if description is not None:
                description.append(stripped.lstrip("#").strip())
            continue
        if not stripped:
            description, default_text = None, None
            continue
        match = KEY.match(line)
        if match is None:  # list items and continuation lines
            continue
        indent, key = len(match["indent"]), match["key"].strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if description is not None:
            yield ".".join(k for _, k in stack), " ".join(part for part in description if part), default_text
        description, default_text = None, None


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def _leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart_dir", nargs="?", type=Path, default=Path("charts/costwarden"))
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    values_text = (args.chart_dir / "values.yaml").read_text()
    missing = undocumented(values_text)
    if missing:
        print(f"values without a `# --` comment: {', '.join(missing)}", file=sys.stderr)
        return 1
    readme = args.chart_dir / "README.md"
    text = render(args.chart_dir)
    if args.check:
        if not readme.is_file() or readme.read_text() != text:
            print(f"{readme} is out of date: run `make chart-docs`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

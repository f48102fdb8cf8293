"""``python -m costwarden.sim serve ...`` (the same as ``costwarden sim serve ...``)."""

from __future__ import annotations

import argparse
import sys

from costwarden.sim import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m costwarden.sim")
    cli.add_subparser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", *(sys.argv[1:] if argv is None else argv)])
    return cli.run(args)


if __name__ == "__main__":
    raise SystemExit(main())

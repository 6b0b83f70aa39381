"""Dispatcher: ``python -m bench NAME [args]`` runs ``bench/<name>.py``'s ``main(argv)``.

``python -m bench`` (or ``list``, ``-h``) lists the benchmarks: the modules of this
package that define a top-level ``SUMMARY`` string. Listing reads the sources with
:mod:`ast` and imports nothing, so a broken benchmark cannot break the list.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

__all__ = ["discover", "main"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HERE = Path(__file__).resolve().parent


def _summary(path: Path) -> str | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        named = any(isinstance(t, ast.Name) and t.id == "SUMMARY" for t in node.targets)
        if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node.value.value
    return None


def discover() -> dict[str, str]:
    """Benchmark name -> summary, for every ``bench/<name>.py`` with a ``SUMMARY``."""
    found: dict[str, str] = {}
    for path in sorted(_HERE.glob("*.py")):
        summary = _summary(path) if _NAME.match(path.stem) else None
        if summary is not None:
            found[path.stem] = summary
    return found


def _list() -> int:
    benchmarks = discover()
    print("usage: python -m bench NAME [--json] [flags]   (python -m bench NAME -h for flags)\n")
    width = max((len(name) for name in benchmarks), default=0)
    for name, summary in benchmarks.items():
        print(f"  {name:<{width}}  {summary}")
    return 0


def main(argv: list[str]) -> int:
    """Run benchmark ``argv[0]`` with the rest of ``argv``, or list them."""
    if not argv or argv[0] in ("list", "-h", "--help"):
        return _list()
    name, rest = argv[0], argv[1:]
    if name not in discover():
        print(f"python -m bench: unknown benchmark {name!r} (`python -m bench` lists them)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

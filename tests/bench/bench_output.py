"""The one rule every benchmark's ``--json`` output follows, checked for the smoke tests."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def json_result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object of a finished ``python -m bench NAME --json``: stdout holds only it."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "with --json stdout must hold only the JSON object"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result

"""The package's source layout: every module stays small enough to read whole."""

from __future__ import annotations

from pathlib import Path

import amtheory

MAX_LINES = 400


def test_no_module_over_400_lines():
    root = Path(amtheory.__file__).parent
    long = {
        str(p.relative_to(root.parent)): n
        for p in sorted(root.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"

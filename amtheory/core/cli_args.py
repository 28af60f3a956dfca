"""Spelling of command-line options shared by the generated command lines (``amtheory train``, the Hopfield
studies): ``--a-b`` is ``--a_b``; a boolean option given alone is switched on and ``--no-NAME`` switches it off."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["normalise_flags"]

_BOOL_VALUES = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})


def normalise_flags(argv: Iterable[str], bools: Iterable[str]) -> list[str]:
    """``argv`` with option names spelled with ``_``; for each name in ``bools``, ``--name`` not followed by a
    boolean value becomes ``--name=true`` and ``--no_name`` becomes ``--name=false``. Values are left as they are."""
    argv, bools = list(argv), set(bools)
    out: list[str] = []
    for i, arg in enumerate(argv):
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if not eq and name.startswith("no_") and name[3:] in bools:
            out.append(f"--{name[3:]}=false")
        elif not eq and name in bools and (i + 1 == len(argv) or argv[i + 1].lower() not in _BOOL_VALUES):
            out.append(f"--{name}=true")
        else:
            out.append(f"--{name}{eq}{value}")
    return out

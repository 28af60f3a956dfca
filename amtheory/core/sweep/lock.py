"""An exclusive lock on a file, for processes that share one device and must not run a memory-hungry stage at once.

``exclusive_lock(path)`` holds an advisory ``flock`` on ``path`` (created with its folder when missing) for the
body of a ``with`` block; another process (or another open of the file) asking for it waits until it is released.
The lock goes with the open file, so a process that dies releases it. POSIX only: where ``fcntl`` is missing, the
lock is refused with an error naming ``path``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, waiting: Callable[[str], None] | None = None) -> Iterator[float]:
    """Hold an exclusive lock on ``path`` for the ``with`` block; yields the seconds spent waiting for it.
    ``waiting`` (e.g. ``print``) is told once, with the path, when the lock is held elsewhere."""
    try:
        import fcntl
    except ImportError as e:  # Windows
        raise OSError(f"path: a lock on {str(path)!r} needs POSIX file locks (fcntl), missing here") from e
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ValueError(f"path: expected a lock file, got {str(p)!r}, which is not a regular file")
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        t0 = time.perf_counter()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(f"waiting for the lock {p}, held by another run")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

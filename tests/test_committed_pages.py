"""The results pages in ``docs/`` are what their generators make of the committed data folders today: a page edited
by hand, or left behind by a change to its data or to the code that reads them, fails here, so that every number on
a page can be traced to the tables beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _same(page: str, committed: Path) -> None:
    old = committed.read_text()
    if page != old:
        at = next(i for i, (a, b) in enumerate(zip(page.splitlines(), old.splitlines() + [""] * 10**6)) if a != b)
        pytest.fail(f"{committed} is not what its generator makes of its data folder today; first difference at line "
                    f"{at + 1}: {page.splitlines()[at][:200]!r} against {old.splitlines()[at:at + 1]!r}")  # fmt: skip


def test_the_memorization_page_is_built_from_its_committed_tables():
    from amtheory.reports.memorization import build_page
    from amtheory.studies.memorization.summary import read_data

    _same(build_page(read_data(DOCS / "data" / "memorization")), DOCS / "results_memorization.md")


def test_the_hopfield_page_is_built_from_its_committed_tables():
    from amtheory.reports.hopfield import build_page

    _same(build_page(DOCS / "data" / "hopfield", "figures"), DOCS / "results_hopfield.md")

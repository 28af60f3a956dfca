"""The README's example (the block between its ``example`` markers, which the docs site also includes) runs as
printed, so the first code a reader sees cannot drift from the package."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    m = re.search(r"\[start:example\] -->\n```python\n(.*?)```\n<!-- --8<-- \[end:example\]", text, re.S)
    assert m, "README.md: no ```python block between the example markers"
    return m.group(1)


def test_readme_example_is_at_most_ten_lines():
    assert len(readme_example().splitlines()) <= 10


def test_readme_example_runs(capsys):
    torch.set_num_threads(1)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith("tensor(")

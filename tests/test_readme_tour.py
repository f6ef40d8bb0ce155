"""The README's tour "How a CNN works, in this code" runs: every ``>>>`` line, exact output.

The ```` ```python ```` blocks of the tour section are joined into one doctest (names defined
in one step stay defined in the next), run with numpy's print options restored afterwards.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## How a CNN works, in this code"
README = ROOT / "README.md"


def tour_text() -> tuple[str, Path]:
    """The tour section of README.md (from its heading to the next ``## `` heading)."""
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    section = text[text.index(HEADING):]
    following = section.find("\n## ", len(HEADING))
    return (section if following < 0 else section[:following]), README


def test_tour_snippets_print_what_the_text_says():
    text, path = tour_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 9, f"expected one snippet per step of the tour in {path}"
    assert all(">>> " in block for block in blocks), "every snippet is a >>> session"
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner()
    report: list[str] = []
    with np.printoptions():  # the tour may set print options; restore them for other tests
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries >= 30


def test_tour_links_point_at_real_files():
    text, path = tour_text()
    links = re.findall(r"\]\(((?:scratchnet|liveness)/[^)#]+)", text)
    assert len(links) >= 9, f"each step of the tour in {path} links to its code"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"{path}: links to missing files {missing}"

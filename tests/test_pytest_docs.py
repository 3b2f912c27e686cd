"""The test functions shown in docs/pytest.md really pass under the plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).parent.parent / "docs" / "pytest.md"


def test_doc_examples_pass_under_the_plugin(pytester: pytest.Pytester) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/pytest.md shows no python example"
    source = "\n\n".join(blocks)
    pytester.makepyfile(test_from_docs=source)
    tests = len(re.findall(r"^def test_", source, re.M))
    result = pytester.runpytest(
        "--wsp-chain=memory", "--wsp-chain=observe,tcpip", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2 * tests)

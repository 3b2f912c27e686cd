"""pytest-wspframe: run a test suite's sockets through Winsock SPI chains.

Registered through the ``pytest11`` entry point as ``wsp`` (``-p no:wsp``
disables it).  See ``docs/pytest.md``.
"""

from __future__ import annotations

import pytest

# Our helper modules assert with plain ``assert``: have pytest rewrite them.
pytest.register_assert_rewrite("pytest_wspframe.completions", "pytest_wspframe.conformance")

__all__: list[str] = []

"""Test helpers: :func:`raises_wsa`, like :func:`pytest.raises` for a WSA code.

::

    from wspframe.testing import raises_wsa

    with raises_wsa(wspframe.WSAECONNREFUSED) as info:
        sock.connect(address)
    assert "refused" in str(info.value)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._errors import WSAError, WSAErrorCode

__all__ = ["raises_wsa"]


def _name(code: int) -> str:
    try:
        return f"{WSAErrorCode(code).name} ({int(code)})"
    except ValueError:
        return str(code)


@contextlib.contextmanager
def raises_wsa(code: int, match: str | None = None) -> Iterator[Any]:
    """Expect the block to raise a :class:`~wspframe.WSAError` with ``code`` (and,
    given ``match``, a message matching that regular expression).

    Yields pytest's ``ExceptionInfo``.  Fails the test, naming both codes, when
    another code is raised, and with "DID NOT RAISE" when nothing is.
    """
    import pytest

    with pytest.raises(WSAError, match=match) as info:
        yield info
    got = info.value.wsa_code
    if got != code:
        pytest.fail(
            f"expected WSAError {_name(code)}, got {_name(got)}: {info.value}",
            pytrace=False,
        )

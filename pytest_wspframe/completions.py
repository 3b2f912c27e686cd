"""``wsp_completions``: assertions about overlapped completions."""

from __future__ import annotations

import time
from typing import Any

import pytest

_ANY: Any = object()


def _name(code: int) -> str:
    import wspframe

    if code == 0:
        return "0 (success)"
    try:
        return f"{wspframe.WSAErrorCode(code).name} ({code})"
    except ValueError:
        return str(code)


class Completions:
    """Expect completions from a completion port or an overlapped."""

    def expect(
        self,
        source: Any,
        *,
        nbytes: int | None = None,
        error: int = 0,
        key: Any = _ANY,
        overlapped: Any = _ANY,
        timeout: float = 5.0,
    ) -> Any:
        """Wait for one completion and check it; return it.

        ``source`` is a :class:`wspframe.CompletionPort` (its next completion)
        or a :class:`wspframe.Overlapped` (its own completion).  ``nbytes=None``
        accepts any count; ``error`` is the expected WSA code (0: success).
        """
        import wspframe

        if isinstance(source, wspframe.Overlapped):
            if not source.wait(timeout):
                pytest.fail(f"{source!r} did not complete within {timeout} s", pytrace=False)
            got_key, got_ov, got_n, got_err = _ANY, source, source.nbytes, source.error
        elif isinstance(source, wspframe.CompletionPort):
            try:
                c = source.get(timeout)
            except TimeoutError:
                pytest.fail(f"no completion on {source!r} within {timeout} s", pytrace=False)
            got_key, got_ov, got_n, got_err = c.key, c.overlapped, c.nbytes, c.error
        else:
            raise TypeError(f"expect() needs a CompletionPort or an Overlapped, got {source!r}")
        problems = []
        if got_err != error:
            problems.append(f"error {_name(got_err)}, expected {_name(error)}")
        if nbytes is not None and got_n != nbytes:
            problems.append(f"nbytes {got_n}, expected {nbytes}")
        if key is not _ANY and got_key != key:
            problems.append(f"key {got_key!r}, expected {key!r}")
        if overlapped is not _ANY and got_ov is not overlapped:
            problems.append(f"overlapped {got_ov!r}, expected {overlapped!r}")
        if problems:
            pytest.fail(
                f"unexpected completion of {got_ov!r}: " + "; ".join(problems), pytrace=False
            )
        if isinstance(source, wspframe.CompletionPort):
            return wspframe.Completion(got_key, got_ov, got_n, got_err)
        return source

    def expect_none(self, port: Any, within: float = 0.1) -> None:
        """Fail if ``port`` delivers a completion within ``within`` seconds."""
        try:
            c = port.get(within)
        except TimeoutError:
            return
        pytest.fail(f"unexpected completion within {within} s: {c!r}", pytrace=False)

    def drain(self, port: Any, settle: float = 0.05) -> list[Any]:
        """Every completion queued on ``port`` now (waiting ``settle`` s for stragglers)."""
        out = []
        deadline = time.monotonic() + settle
        while True:
            remaining = deadline - time.monotonic()
            try:
                out.append(port.get(max(remaining, 0)))
            except TimeoutError:
                return out


@pytest.fixture
def wsp_completions() -> Completions:
    """Assertions about completions: ``expect``, ``expect_none``, ``drain``."""
    return Completions()

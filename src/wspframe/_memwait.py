"""How a blocked call of the ``memory`` provider sleeps: parkers.

A parker is one sleeper's wake-up call: :meth:`~EventfdParker.park` sleeps
until :meth:`~EventfdParker.unpark` or a timeout, and an unpark that comes
first is kept, so a wake-up between "decide to sleep" and "sleep" is never
lost.  It may also return early (an unpark meant for an earlier park), so
sleepers look again and sleep on.

On Linux a parker is an eventfd: writing it leaves the GIL, so on one CPU
the woken thread runs at once, while the waker is still in the kernel; if
the waker released the network lock first (it does), the sleeper finds both
free.  Elsewhere, or when no descriptor is left, it is a lock.
"""

from __future__ import annotations

import os
import select
from _thread import allocate_lock
from collections.abc import Callable
from typing import Any, Final, TypeAlias

__all__ = ["EventfdParker", "LockParker", "Parker", "make_parker"]

#: The longest one park sleeps (poll() counts milliseconds in an int); a
#: longer timeout ends in an early return, and the sleeper parks again.
LONGEST: Final = 1_000_000.0


class EventfdParker:
    """A thread's wake-up call on Linux: :meth:`park` sleeps in the kernel until
    :meth:`unpark` (or the timeout); an unpark before the park is kept.

    An eventfd rather than a lock: the waker leaves the interpreter lock while
    it writes, so on one CPU the woken thread runs at once, with the lock free.
    """

    __slots__ = ("_fd", "_poll")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC)
        self._poll: Any = None

    def park(self, timeout: float | None) -> None:
        """Sleep until unparked or ``timeout`` seconds passed (None: no limit);
        may return early (an unpark meant for an earlier park, or a timeout
        beyond :data:`LONGEST`)."""
        if timeout is None:
            os.eventfd_read(self._fd)
            return
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()
            poll.register(self._fd, select.POLLIN)
        if poll.poll(min(timeout, LONGEST) * 1000.0):
            os.eventfd_read(self._fd)

    def unpark(self) -> None:
        os.eventfd_write(self._fd, 1)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        fd = getattr(self, "_fd", -1)  # unset when the eventfd could not be made
        if fd >= 0:
            _close(fd)


class LockParker:
    """:class:`EventfdParker` where there is no eventfd: a lock held while unparked."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def park(self, timeout: float | None) -> None:
        self._lock.acquire(True, -1 if timeout is None else min(timeout, LONGEST))

    def unpark(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # unparked already
            pass


Parker: TypeAlias = "EventfdParker | LockParker"
new_parker: Callable[[], Parker] = EventfdParker if hasattr(os, "eventfd") else LockParker


def make_parker() -> Parker:
    """A new parker: an eventfd one where there are eventfds (and descriptors)."""
    try:
        return new_parker()
    except OSError:  # no descriptor left
        return LockParker()

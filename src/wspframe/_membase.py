"""What every part of the ``memory`` provider builds on: checks and blocked calls.

:class:`MemoryProviderBase` is the common base of the parts that make up
:class:`~wspframe._memory.MemoryProvider` (connections, data, overlapped
operations, options); it holds the provider's :attr:`network` and the helpers
they share.  See ``wspframe._memory`` for the model.

Theory of operation: a blocked call
-----------------------------------
A synchronous call that cannot finish at once does not loop on the socket's
state.  It becomes an :class:`~wspframe._memsock.Op` (without an overlapped),
queued on its socket exactly like an overlapped operation, so neither kind
overtakes the other, and :meth:`MemoryProviderBase._await` parks the thread
until the operation is done.  Its states:

=========  ==========================================  =======================
state      left by                                     to
=========  ==========================================  =======================
queued     another thread serves it (data, room,       done: its outcome, or
           a connection; ``MemoryNetwork._finish``)    its error if nothing
                                                       moved
queued     close (WSAEINTR), the network going down    done, with that error
           (WSAENETDOWN): they finish it too
queued     non-blocking (WSAEWOULDBLOCK), its          withdrawn: out of the
           timeout (WSAETIMEDOUT), any exception in    queue, so the operations
           the waiting thread                          behind it go on
=========  ==========================================  =======================

A call that is done or withdrawn after moving bytes (part of a send, the
first bytes of a MSG_WAITALL receive) returns what it moved instead of
failing.  Only the thread that served it wakes a parked call (or close, down,
the timeout): no other change of the network does.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ._errors import WSAError, WSAErrorCode, raise_wsa
from ._memaddr import ephemeral_port, register
from ._memnet import MemoryNetwork
from ._memsock import CLOSED, MemorySocket, Op, failure, outcome
from ._spi import ServiceProvider

__all__ = ["MemoryProviderBase", "autobind"]

_E = WSAErrorCode


class MemoryProviderBase(ServiceProvider):
    """The base of the ``memory`` provider's parts: its network and shared helpers.

    Not a provider by itself (it has no name and no entries): only
    :class:`~wspframe._memory.MemoryProvider`, which puts the parts together,
    is.  Helpers marked "lock held" expect ``with self.network._guard``.
    """

    #: Set by MemoryProvider (see there).
    BUFFER_SIZE: ClassVar[int]
    MAX_BACKLOG: ClassVar[int]

    network: MemoryNetwork

    def _check(self, s: Any) -> None:
        """Raise unless ``s`` is an open socket of this network and the network is up."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        if not self.network.is_up:
            raise_wsa(_E.WSAENETDOWN, "the memory network is down")

    def _check_bufsize(self, bufsize: Any) -> None:
        if type(bufsize) is not int:
            raise_wsa(_E.WSAEINVAL, f"bufsize must be an int, got {bufsize!r}")
        if bufsize < 0:
            raise_wsa(_E.WSAEINVAL, f"bufsize must be >= 0, got {bufsize!r}")

    def _op(self, s: Any, ov: Any, kind: int, size: int = 0, flags: int = 0) -> Op:
        """A new overlapped operation on ``s`` (lock held); WSAENOTSOCK unless
        ``s`` is an open socket of this network (nothing completes then)."""
        if type(s) is not MemorySocket or s.network is not self.network:
            raise_wsa(_E.WSAENOTSOCK, f"{s!r} is not a socket of this memory provider")
        if s.state == CLOSED:
            raise_wsa(_E.WSAENOTSOCK, f"socket {s.handle} is closed")
        return Op(s, ov, kind, size, flags)

    # -- blocked calls (lock held; released while parked) -----------------------
    def _block(self, s: MemorySocket, op: Op, timeout: float, deadline: float, what: str) -> float:
        """Park once, within the socket's ``timeout``, for ``op`` (a blocked
        call); return the deadline (0.0 until one is set).

        Raises WSAEWOULDBLOCK (non-blocking), WSAETIMEDOUT (deadline passed),
        WSAEINTR (closed meanwhile) or WSAENETDOWN (network went down).
        """
        if timeout == 0.0:
            raise_wsa(_E.WSAEWOULDBLOCK, f"{what} would block on a non-blocking socket")
        now = time.monotonic()
        if not deadline:
            deadline = now + timeout
        remaining = deadline - now
        if remaining <= 0.0:
            raise_wsa(_E.WSAETIMEDOUT, f"{what} timed out after {timeout!r} s")
        net = self.network
        net._park(op, remaining)
        if op.done:
            return deadline
        if s.state == CLOSED:
            raise_wsa(_E.WSAEINTR, f"{what} interrupted: socket {s.handle} was closed")
        if not net.is_up:
            raise_wsa(_E.WSAENETDOWN, f"{what} failed: the memory network is down")
        return deadline

    def _await(self, s: MemorySocket, op: Op, what: str) -> Any:
        """Wait until the blocked call's ``op`` (queued on ``s``) is done, within
        the socket's timeout; its outcome.  A call that gives up or fails after
        moving bytes returns what it moved (a partial count, the bytes got)."""
        timeout = s.timeout
        deadline = 0.0
        try:
            if timeout is None:
                park = self.network._park
                while not op.done:  # only done wakes it (close and down finish it)
                    park(op, None)
            else:
                while not op.done:
                    deadline = self._block(s, op, timeout, deadline, what)
        except WSAError:
            if not op.done:
                self.network._withdraw(op)
                if op.count:
                    return outcome(op)
                raise
        except BaseException:
            if not op.done:
                self.network._withdraw(op)
            raise
        if op.error and not op.count:
            raise_wsa(op.error, failure(op.error, what, s))
        return outcome(op)


def autobind(s: MemorySocket, ip: str) -> tuple[str, int]:
    """Bind ``s`` (not bound yet) to ``ip`` and the next ephemeral port, as
    connecting or sending from an unbound socket does (lock held)."""
    net = s.network
    s.local = (ip, ephemeral_port(net, s.key))
    register(s)
    return s.local

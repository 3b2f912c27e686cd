"""Overlapped I/O: ``Overlapped``, events, APCs and completion ports.

Theory of operation
-------------------
An overlapped operation is started with an :class:`Overlapped` and finishes
exactly once, when the provider that carries it calls
:func:`finish` (through ``Upcalls.complete_overlapped_request`` for minted
handles, or through the host's I/O engine for IFS handles).  Finishing records
the byte count and error and then notifies the client through exactly the
mechanisms Winsock defines:

* a **completion routine** (given when the operation was started) is queued as
  an APC to the issuing thread and runs only when that thread enters an
  alertable wait (:func:`sleep_ex`, :func:`wait_for_multiple_events`);
* otherwise the overlapped's :class:`Event` (if any) is set, and the
  :class:`CompletionPort` associated with the handle completed against (if
  any) receives a :class:`Completion`.

A *substitute* overlapped (what a layered provider hands to the next layer) has
a callback instead: finishing it calls the callback and nothing else, so only
the client's own overlapped ever reaches the client's port.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, NoReturn

from ._errors import WSAError, WSAErrorCode, raise_wsa, wsa_error

__all__ = [
    "WAIT_IO_COMPLETION",
    "WAIT_OBJECT_0",
    "Completion",
    "CompletionPort",
    "Event",
    "Overlapped",
    "queue_apc",
    "sleep_ex",
    "wait_for_multiple_events",
]

#: Returned by an alertable wait that ran completion routines.
WAIT_IO_COMPLETION: Final = 0xC0
#: Index base returned by :func:`wait_for_multiple_events`.
WAIT_OBJECT_0: Final = 0

# One condition for every event and APC queue: waits are rare next to I/O, and
# one lock keeps "any of these events, or an APC" simple and race free.
_SIGNAL = threading.Condition(threading.Lock())
_APCS: dict[int, collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]]] = {}

CompletionRoutine = Callable[[int, int, "Overlapped", int], Any]


class Event:
    """``WSAEVENT``: a manual-reset event (``auto_reset=True`` for auto-reset)."""

    __slots__ = ("_auto", "_set")

    def __init__(self, *, auto_reset: bool = False, initial: bool = False) -> None:
        self._auto = auto_reset
        self._set = initial

    def set(self) -> None:
        """``WSASetEvent``."""
        with _SIGNAL:
            self._set = True
            _SIGNAL.notify_all()

    def reset(self) -> None:
        """``WSAResetEvent``."""
        with _SIGNAL:
            self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None, alertable: bool = False) -> int:
        """Wait for this event alone; see :func:`wait_for_multiple_events`."""
        return wait_for_multiple_events([self], True, timeout, alertable)

    def __repr__(self) -> str:
        return f"<wspframe.Event {'set' if self._set else 'clear'}>"


def queue_apc(thread_ident: int, function: Callable[..., Any], *args: Any) -> None:
    """``QueueUserAPC``: run ``function(*args)`` in thread ``thread_ident`` at its
    next alertable wait."""
    with _SIGNAL:
        _APCS.setdefault(thread_ident, collections.deque()).append((function, args))
        _SIGNAL.notify_all()


def _run_apcs() -> bool:
    """Run the calling thread's queued APCs (outside the lock); True if any ran."""
    ran = False
    ident = threading.get_ident()
    while True:
        with _SIGNAL:
            pending = _APCS.get(ident)
            if not pending:
                _APCS.pop(ident, None)
                return ran
            function, args = pending.popleft()
        function(*args)
        ran = True


def pending_apcs(thread_ident: int | None = None) -> int:
    """How many APCs wait for ``thread_ident`` (default: the calling thread)."""
    with _SIGNAL:
        return len(_APCS.get(thread_ident or threading.get_ident(), ()))


def wait_for_multiple_events(
    events: Sequence[Event],
    wait_all: bool = False,
    timeout: float | None = None,
    alertable: bool = False,
) -> int:
    """``WSAWaitForMultipleEvents``.

    Returns the index of the (first) signalled event (``WAIT_OBJECT_0 + i``), or
    :data:`WAIT_IO_COMPLETION` when ``alertable`` and completion routines ran.
    Raises ``TimeoutError`` (WAIT_TIMEOUT) when ``timeout`` passes.  Auto-reset
    events are reset by a successful wait.
    """
    if not events and not alertable:
        raise_wsa(WSAErrorCode.WSA_INVALID_PARAMETER, "no events to wait for")
    if timeout is not None and timeout < 0:
        raise_wsa(WSAErrorCode.WSA_INVALID_PARAMETER, f"timeout must be >= 0, got {timeout!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    ident = threading.get_ident()
    while True:
        with _SIGNAL:
            if not (alertable and _APCS.get(ident)):
                states = [e._set for e in events]
                if events and (all(states) if wait_all else any(states)):
                    index = states.index(True)
                    for e in events if wait_all else (events[index],):
                        if e._auto:
                            e._set = False
                    return WAIT_OBJECT_0 + index
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise wsa_error(WSAErrorCode.WAIT_TIMEOUT, f"no event within {timeout} s")
                _SIGNAL.wait(remaining)
                continue
        # Completion routines are queued for this thread: run them, outside the lock.
        if _run_apcs():
            return WAIT_IO_COMPLETION


def sleep_ex(timeout: float | None, alertable: bool = True) -> int:
    """``SleepEx``: sleep; when ``alertable``, return :data:`WAIT_IO_COMPLETION`
    as soon as completion routines queued to this thread have run, else 0."""
    if not alertable:
        time.sleep(timeout or 0)
        return 0
    try:
        return wait_for_multiple_events([], False, timeout, True)
    except WSAError as exc:
        if exc.wsa_code == WSAErrorCode.WAIT_TIMEOUT:
            return 0
        raise


class Completion(NamedTuple):
    """One completion packet: ``GetQueuedCompletionStatus``'s outputs."""

    key: int
    overlapped: Overlapped | None
    nbytes: int
    error: int


_CLOSED: Final = object()


class CompletionPort:
    """An I/O completion port.

    ``associate(socket, key)`` routes the completions of overlapped operations
    on that socket's handle here; ``get``/``get_many`` dequeue them; ``post``
    queues a packet of your own.  ``concurrency`` is recorded for parity with
    ``CreateIoCompletionPort`` (Python threads are not scheduled by it).
    """

    def __init__(self, concurrency: int = 0) -> None:
        if not isinstance(concurrency, int) or concurrency < 0:
            raise_wsa(
                WSAErrorCode.WSA_INVALID_PARAMETER, f"concurrency must be >= 0, got {concurrency!r}"
            )
        self.concurrency = concurrency
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._associations: list[tuple[Any, int]] = []

    def associate(self, socket: Any, key: int = 0) -> CompletionPort:
        """Associate ``socket`` (a :class:`~wspframe.Socket`) with this port under ``key``."""
        self._check_open()
        socket._associate(self, key)
        self._associations.append((socket, key))
        return self

    def post(
        self, key: int = 0, overlapped: Overlapped | None = None, nbytes: int = 0, error: int = 0
    ) -> None:
        """``PostQueuedCompletionStatus``."""
        self._check_open()
        self._queue.put(Completion(key, overlapped, nbytes, error))

    def _put(self, completion: Completion) -> None:
        if not self._closed:
            self._queue.put(completion)

    def get(self, timeout: float | None = None) -> Completion:
        """``GetQueuedCompletionStatus``: the next completion; ``TimeoutError``
        (WAIT_TIMEOUT) if none within ``timeout``; WSA_INVALID_HANDLE once closed."""
        # Called once per completion: no call but the queue's when all is well.
        if self._closed or timeout is not None:
            return self._get_slow(timeout)
        item = self._queue.get()
        if item is _CLOSED:
            self._closed_now()
        return item  # type: ignore[no-any-return]

    def _get_slow(self, timeout: float | None) -> Completion:
        self._check_open()
        try:
            item = self._queue.get(True, timeout)
        except queue.Empty:
            raise wsa_error(
                WSAErrorCode.WAIT_TIMEOUT, f"no completion within {timeout} s"
            ) from None
        if item is _CLOSED:
            self._closed_now()
        return item  # type: ignore[no-any-return]

    def _closed_now(self) -> NoReturn:
        self._queue.put(_CLOSED)  # wake the next waiter too
        raise_wsa(WSAErrorCode.WSA_INVALID_HANDLE, "the completion port was closed")

    def get_many(self, max_count: int = 64, timeout: float | None = None) -> list[Completion]:
        """``GetQueuedCompletionStatusEx``: at least one completion (waiting up to
        ``timeout``), at most ``max_count``."""
        if not isinstance(max_count, int) or max_count < 1:
            raise_wsa(
                WSAErrorCode.WSA_INVALID_PARAMETER, f"max_count must be >= 1, got {max_count!r}"
            )
        out = [self.get(timeout)]
        get = self._queue.get_nowait
        while len(out) < max_count:
            try:
                item = get()
            except queue.Empty:
                break
            if item is _CLOSED:
                self._queue.put(_CLOSED)
                break
            out.append(item)
        return out

    def close(self) -> None:
        """Close the port: waiters wake with WSA_INVALID_HANDLE; sockets stay open."""
        if self._closed:
            return
        self._closed = True
        for socket, _ in self._associations:
            socket._dissociate(self)
        self._associations.clear()
        self._queue.put(_CLOSED)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise_wsa(WSAErrorCode.WSA_INVALID_HANDLE, "the completion port is closed")

    def __enter__(self) -> CompletionPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._queue.qsize()} queued"
        return f"<wspframe.CompletionPort {state}>"


class Overlapped:
    """``WSAOVERLAPPED``: one overlapped operation's state and result.

    Create one per operation (it may be reused once done).  ``event`` is set
    on completion when no completion routine was given.  After completion:
    ``nbytes``, ``error`` (0 or the WSA code), ``data`` (the bytes received, for
    receives), ``address`` (the sender, for ``recvfrom``), ``flags``; for
    ``accept_overlapped``, ``data`` is the accepted :class:`~wspframe.Socket`.
    """

    __slots__ = (
        "__weakref__",
        "_callback",
        "_finished",
        "_finisher",
        "_owner",
        "_port",
        "_routine",
        "_thread",
        "_waiter",
        "address",
        "data",
        "error",
        "event",
        "flags",
        "nbytes",
        "op",
        "parent",
        "pending",
    )

    def __init__(self, event: Event | None = None) -> None:
        self.event = event
        self.pending = False
        self.nbytes = 0
        self.error = 0
        self.flags = 0
        self.data: Any = None
        self.address: Any = None
        self.op = ""
        #: For a substitute: the client's overlapped it stands for.
        self.parent: Overlapped | None = None
        # Done yet; a waiter's Event is made only when someone waits (setting
        # a threading.Event costs half of a completion).
        self._finished = False
        self._waiter: threading.Event | None = None
        self._routine: CompletionRoutine | None = None
        self._thread = 0
        self._callback: Callable[[Overlapped], Any] | None = None
        self._finisher: Callable[[Overlapped], Any] | None = None
        self._port: tuple[CompletionPort, int] | None = None
        self._owner: Any = None

    # -- the client's view ----------------------------------------------------
    def done(self) -> bool:
        """Whether the operation has completed."""
        return self._finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (True) or ``timeout`` passes (False)."""
        if self._finished:
            return True
        with _WAITERS:
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = threading.Event()
        # finish() sets _finished before it looks for a waiter: either it sees
        # this one, or this check sees it finished.
        if self._finished:
            return True
        return waiter.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The operation's result: the bytes received for a receive, the byte
        count otherwise, ``(data, address)`` for ``recvfrom``, the new Socket for
        ``accept``, the result for ``ioctl``.  Raises the operation's WSAError;
        TimeoutError (WAIT_TIMEOUT) if not done within ``timeout``."""
        if not self.wait(timeout):
            raise wsa_error(WSAErrorCode.WAIT_TIMEOUT, f"operation not done within {timeout} s")
        if self.error:
            raise wsa_error(self.error, f"overlapped {self.op or 'operation'} failed")
        if self.op in ("recv", "recvfrom", "accept", "ioctl"):
            return (self.data, self.address) if self.op == "recvfrom" else self.data
        return self.nbytes

    # -- the provider's view -----------------------------------------------------
    def substitute(self, callback: Callable[[Overlapped], Any]) -> Overlapped:
        """A substitute for this overlapped, for a layer to hand the next layer:
        finishing it calls ``callback(substitute)`` and notifies nobody else."""
        sub = Overlapped()
        sub.parent = self
        sub.op = self.op
        sub._callback = callback
        sub.pending = True
        return sub

    @classmethod
    def internal(cls, op: str, callback: Callable[[Overlapped], Any]) -> Overlapped:
        """An overlapped the host issues for itself (the redirector): finishing it
        calls ``callback`` only."""
        ov = cls()
        ov.op = op
        ov._callback = callback
        ov.pending = True
        return ov

    def _start(self, op: str, routine: CompletionRoutine | None) -> None:
        if self.pending:
            raise_wsa(
                WSAErrorCode.WSAEINVAL, "this Overlapped is already in use by a pending operation"
            )
        self.pending = True
        self.op = op
        self.nbytes = 0
        self.error = 0
        self.flags = 0
        self.data = None
        self.address = None
        self._routine = routine
        self._thread = threading.get_ident()
        self._finished = False
        self._waiter = None
        if self.event is not None and routine is None:
            self.event.reset()

    def __repr__(self) -> str:
        if self.pending:
            state = "pending"
        elif self._finished:
            state = f"done nbytes={self.nbytes} error={self.error}"
        else:
            state = "idle"
        kind = "substitute " if self.parent is not None else ""
        return f"<wspframe.Overlapped {kind}{self.op or '-'} {state}>"


_WAITERS = threading.Lock()
#: ``Completion(...)`` without the Python frame of a named tuple's ``__new__``.
_new_tuple: Final = tuple.__new__


def _set_done(ov: Overlapped) -> None:
    ov._finished = True
    waiter = ov._waiter
    if waiter is not None:
        waiter.set()


def finish(
    ov: Overlapped, error: int, nbytes: int, port: tuple[CompletionPort, int] | None
) -> None:
    """Complete ``ov`` exactly once and notify as Winsock does.

    ``port`` is the (port, key) associated with the handle completed against.
    A second completion of the same operation is WSAEINVAL (a provider bug).
    ``Upcalls.complete_overlapped_request`` inlines the common case: keep the
    two in step.
    """
    if not ov.pending:
        raise_wsa(WSAErrorCode.WSAEINVAL, f"{ov!r} completed twice (or never started)")
    ov.error = error if error.__class__ is int else int(error)  # not an IntEnum member
    ov.nbytes = nbytes if nbytes.__class__ is int else int(nbytes)
    ov.pending = False
    callback = ov._callback
    if callback is not None:  # a substitute: only the layer hears of it
        ov._finished = True  # _set_done(), inlined
        waiter = ov._waiter
        if waiter is not None:
            waiter.set()
        callback(ov)
        return
    finisher = ov._finisher
    if finisher is not None:  # the socket's bookkeeping (may fail an accept)
        ov._finisher = None
        finisher(ov)
    ov._finished = True  # _set_done(), inlined: this is the hot path
    waiter = ov._waiter
    if waiter is not None:
        waiter.set()
    routine = ov._routine
    if routine is not None:
        queue_apc(ov._thread, routine, ov.error, ov.nbytes, ov, ov.flags)
        return
    if ov.event is not None:
        ov.event.set()
    if port is not None:
        target = port[0]
        if not target._closed:  # CompletionPort._put(), inlined
            target._queue.put(_new_tuple(Completion, (port[1], ov, ov.nbytes, ov.error)))

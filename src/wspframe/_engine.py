"""The host's I/O engine: overlapped operations on IFS handles.

Theory of operation
-------------------
For an IFS handle Winsock leaves overlapped I/O to the operating system: the
provider starts the operation on its own OS handle and the kernel completes it.
:class:`IOEngine` plays that part for wspframe, one per host.  A provider hands
it an *attempt*: a callable that performs the operation once without blocking
and returns the byte count (setting ``ov.data``/``ov.address`` itself), or
raises ``BlockingIOError`` when it would block, or an ``OSError``/``WSAError``
when it fails.

Every OS socket has two FIFO queues, one per direction (``"r"`` and ``"w"``).

* **At once.**  When nothing of the same direction is queued or running on
  that socket, :meth:`IOEngine.submit` tries the operation in the caller's
  thread.  If it finishes (success or failure) it completes there and then:
  no engine thread, no descriptor, no wakeup.
* **Later.**  Otherwise, or when the attempt would block, the operation joins
  the tail of its queue (a blocked head stays the head) and the socket is
  watched for readiness in that direction.  One daemon thread
  (``wspframe-io-engine``, started the first time anything has to wait) waits
  on a selector and retries the head of a ready queue until it would block
  again or the queue is empty.
* **One at a time per direction.**  At most one attempt per queue is in
  flight, in the caller's thread or the engine's, never both: operations on one
  socket never reorder or interleave stream data.  A stream send that
  completes partially stays at the head, keeping its remainder.
* **Exactly once, in order.**  An operation is owned by whoever took it out of
  its queue under the engine's lock; completions of one socket go through one
  *deliverer* at a time, in the order the operations finished, and
  ``complete`` is always called outside the lock.
* **Cancel.**  :meth:`IOEngine.cancel` stops new attempts on the socket, waits
  (bounded) for one already in flight and for deliveries under way, then
  completes everything still queued with WSA_OPERATION_ABORTED in the calling
  thread: when it returns, nothing of that socket is pending any more.

The selector is changed under the lock from whichever thread changes a queue.
Where the kernel watches the interest set itself (epoll, kqueue), a
registration made while the engine thread waits takes effect at once and needs
no wakeup; with ``select``/``poll`` the engine is woken through its socketpair.

``complete`` must not block: it runs in the submitting thread, in a thread
calling :meth:`IOEngine.cancel`, or in the engine thread, where it holds up
every other socket.  It may start new operations (they are delivered after it
returns) and may cancel the socket it completes for.  An exception from it is
reported through :data:`sys.unraisablehook` and otherwise ignored; an
exception from an attempt is the operation's error (``OSError``: the matching
WSA code; anything else: WSASYSCALLFAILURE).  A socket closed without
``cancel`` is a provider bug; the engine copes (its operations complete with
WSA_OPERATION_ABORTED or WSAENOTSOCK) but cannot retry them.
"""

from __future__ import annotations

import collections
import dataclasses
import selectors
import socket as _socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from ._errors import WSAErrorCode, contain, from_os_error, raise_wsa, report_unraisable

__all__ = ["IMMEDIATE", "READ", "WRITE", "IOEngine"]

#: Operation kinds for :meth:`IOEngine.submit`.
READ: Final = "r"
WRITE: Final = "w"
#: Attempted once, at once, never queued (``ioctl``): would-block is WSAEWOULDBLOCK.
IMMEDIATE: Final = "i"

_ABORTED: Final = int(WSAErrorCode.WSA_OPERATION_ABORTED)
_NOTSOCK: Final = int(WSAErrorCode.WSAENOTSOCK)
_WOULDBLOCK: Final = int(WSAErrorCode.WSAEWOULDBLOCK)
#: How long ``cancel`` waits for an attempt in flight or a delivery under way.
_CANCEL_WAIT: Final = 5.0
#: How long ``close`` waits for the engine thread.
_JOIN_WAIT: Final = 5.0
#: Operations the engine thread runs on one ready queue before serving others.
_BATCH: Final = 64

Attempt = Callable[[], int]
#: ``complete(handle, overlapped, error, nbytes)``.
Completer = Callable[[int, Any, int, int], Any]
_Op = tuple[int, Attempt, Any]  # handle, attempt, overlapped
_Done = tuple[int, Any, int, int]  # handle, overlapped, error, nbytes

_KERNEL_WATCHED: Final = tuple(
    getattr(selectors, name)
    for name in ("EpollSelector", "KqueueSelector")
    if hasattr(selectors, name)
)


class _Direction:
    """One FIFO queue of a socket.  ``runner``: the ident of the thread
    attempting the head right now (the head is then out of ``queue``), or 0."""

    __slots__ = ("queue", "runner")

    def __init__(self) -> None:
        self.queue: collections.deque[_Op] = collections.deque()
        self.runner = 0


class _State:
    """What the engine keeps for one OS socket (keyed by descriptor)."""

    __slots__ = ("closing", "deliverer", "done", "fd", "mask", "r", "sock", "w", "waiters")

    def __init__(self, fd: int, sock: _socket.socket) -> None:
        self.fd = fd
        self.sock = weakref.ref(sock)
        self.r = _Direction()
        self.w = _Direction()
        #: Completions waiting for the deliverer, in order.
        self.done: collections.deque[_Done] = collections.deque()
        #: Ident of the thread delivering this socket's completions, or 0.
        #: Invariant: ``done`` is empty whenever ``deliverer`` is 0.
        self.deliverer = 0
        #: Selector events registered for ``fd`` (0: not registered).
        self.mask = 0
        #: Being cancelled: no new attempts start.
        self.closing = False
        #: Threads in ``cancel`` waiting for this socket to settle.
        self.waiters = 0


@dataclasses.dataclass
class IOEngine:
    """Runs overlapped operations on OS sockets and completes them through
    ``complete(handle, overlapped, error, nbytes)`` (the host's routing).

    One per host: the host's :class:`~wspframe.Upcalls` makes it on first use
    (``upcalls.io_engine``) and closes it at cleanup.  See the module docstring
    for the theory of operation.
    """

    def __init__(
        self,
        complete: Completer,
        *,
        selector_factory: Callable[[], selectors.BaseSelector] | None = None,
    ) -> None:
        self._complete = complete
        self._selector_factory = selector_factory or selectors.DefaultSelector
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._states: dict[int, _State] = {}
        self._selector: selectors.BaseSelector | None = None
        self._kernel_watched = True
        self._wake_r: _socket.socket | None = None
        self._wake_w: _socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._engine_ident = 0
        self._closed = False

    # -- the provider's interface -----------------------------------------------------
    def submit(
        self, handle: int, sock: _socket.socket, kind: str, attempt: Attempt, ov: Any
    ) -> None:
        """Start an overlapped operation on ``sock`` (exposed as ``handle``).

        ``kind`` is :data:`READ` or :data:`WRITE` (its queue), or
        :data:`IMMEDIATE` (attempted once, now, whatever is queued).  The
        operation completes exactly once through ``complete``: at once, in the
        calling thread, when nothing of its kind is queued or running and it
        does not block; otherwise later, in order.  An unknown ``kind`` is
        WSAEINVAL (and nothing completes).
        """
        if kind != READ and kind != WRITE:
            if kind != IMMEDIATE:
                raise_wsa(WSAErrorCode.WSAEINVAL, f"kind must be 'r', 'w' or 'i', got {kind!r}")
            error = _ABORTED if self._closed else _NOTSOCK if sock.fileno() < 0 else 0
            self._at_once(handle, attempt, ov, error)
            return
        me = threading.get_ident()
        fd = sock.fileno()
        if fd < 0:
            self._at_once(handle, attempt, ov, _NOTSOCK)
            return
        stale = None
        with self._lock:
            if self._closed:
                st = None
            else:
                st = self._states.get(fd)
                if st is None or st.sock() is not sock:
                    st, stale = self._state_for(fd, sock, me)
                d = st.r if kind == READ else st.w
                if d.runner or d.queue or st.closing:
                    # Behind another operation of its kind: the engine takes it.
                    d.queue.append((handle, attempt, ov))
                    queued = True
                    drain = self._watch(st, me)
                else:
                    d.runner = me
                    queued = False
        if stale is not None:
            self._drain(stale, me, None)
        if st is None:
            self._at_once(handle, attempt, ov, _ABORTED)
        elif not queued:
            self._run(st, d, (handle, attempt, ov), me)
        elif drain:
            self._drain(st, me, None)

    def cancel(self, sock: _socket.socket) -> int:
        """Complete every pending operation of ``sock`` with WSA_OPERATION_ABORTED
        (995), exactly once each, in the calling thread, and stop watching it.

        An attempt already in flight in another thread is waited for (briefly)
        and completes with its own result.  Returns how many were aborted.
        """
        fd = sock.fileno()
        with self._lock:
            if fd >= 0:
                st = self._states.get(fd)
            else:  # closed already: find it by identity
                st = next((x for x in self._states.values() if x.sock() is sock), None)
        return 0 if st is None else self._cancel(st)

    def close(self) -> None:
        """Abort everything pending, stop and join the engine thread (bounded),
        and close the engine's own descriptors.  Idempotent."""
        with self._lock:
            already = self._closed
            self._closed = True
            states = list(self._states.values())
        if not already:
            for st in states:
                self._cancel(st)
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_WAIT)
        with self._lock:
            selector, self._selector = self._selector, None
            wake_r, self._wake_r = self._wake_r, None
            wake_w, self._wake_w = self._wake_w, None
            self._thread = None
        if selector is not None:
            selector.close()
        for s in (wake_r, wake_w):
            if s is not None:
                s.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self, sock: _socket.socket | None = None) -> int:
        """How many operations are queued or in flight (on ``sock``, or in all)."""
        with self._lock:
            if sock is not None:
                states = [x for x in self._states.values() if x.sock() is sock]
            else:
                states = list(self._states.values())
            return sum(
                len(x.r.queue) + len(x.w.queue) + bool(x.r.runner) + bool(x.w.runner)
                for x in states
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.pending()} pending"
        thread = "thread running" if self._thread is not None else "no thread"
        return f"<wspframe.IOEngine {state}, {thread}>"

    # -- running operations -------------------------------------------------------------
    def _at_once(self, handle: int, attempt: Attempt, ov: Any, error: int) -> None:
        nbytes = 0
        if not error:
            error, nbytes = _attempt(attempt)
            if nbytes < 0:
                error, nbytes = _WOULDBLOCK, 0
        try:
            self._complete(handle, ov, error, nbytes)
        except Exception as exc:
            report_unraisable(exc, "wspframe I/O engine: complete() raised", ov)

    def _run(self, st: _State, d: _Direction, op: _Op, me: int) -> bool:
        """Attempt ``op``, which this thread took out of ``d`` (``d.runner == me``);
        complete it if it finished, else put it back at the head.  True if it
        finished."""
        interrupt = None
        try:
            error, nbytes = _attempt(op[1])
        except BaseException as exc:  # KeyboardInterrupt and the like: complete, re-raise
            error, nbytes, interrupt = int(WSAErrorCode.WSAEINTR), 0, exc
        finished = nbytes >= 0
        first = None
        with self._lock:
            d.runner = 0
            if st.waiters:
                self._cond.notify_all()
            if not finished:
                d.queue.appendleft(op)
            elif st.deliverer:  # being delivered (perhaps by an outer frame): join, in order
                st.done.append((op[0], op[2], error, nbytes))
            else:
                st.deliverer = me
                first = (op[0], op[2], error, nbytes)
            drain = self._watch(st, me) or first is not None
        if drain:
            self._drain(st, me, first)
        if interrupt is not None:
            raise interrupt
        return finished

    def _drain(self, st: _State, me: int, first: _Done | None) -> None:
        """Deliver ``first`` and then ``st.done`` while this thread is the
        deliverer (set under the lock by the caller)."""
        complete = self._complete
        item = first
        while True:
            if item is not None:
                try:
                    complete(*item)
                except Exception as exc:
                    report_unraisable(exc, "wspframe I/O engine: complete() raised", item[1])
            with self._lock:
                if st.deliverer != me:
                    return  # a nested cancel delivered the rest
                if not st.done:
                    st.deliverer = 0
                    if st.waiters:
                        self._cond.notify_all()
                    return
                item = st.done.popleft()

    def _cancel(self, st: _State) -> int:
        me = threading.get_ident()
        with self._lock:
            st.closing = True
            deadline = None
            while (
                st.r.runner not in (0, me)
                or st.w.runner not in (0, me)
                or st.deliverer not in (0, me)
            ):
                now = time.monotonic()
                if deadline is None:
                    deadline = now + _CANCEL_WAIT
                elif now >= deadline:
                    break
                st.waiters += 1
                try:
                    self._cond.wait(deadline - now)
                finally:
                    st.waiters -= 1
            if self._states.get(st.fd) is st:
                del self._states[st.fd]
            aborted = [*st.r.queue, *st.w.queue]
            st.r.queue.clear()
            st.w.queue.clear()
            self._apply(st, 0)
            st.done.extend((handle, ov, _ABORTED, 0) for handle, _, ov in aborted)
            if st.deliverer in (0, me):
                st.deliverer = me
                deliver = True
            else:  # the wait timed out: the deliverer under way delivers them
                deliver = False
        if deliver:
            self._drain(st, me, None)
        return len(aborted)

    # -- bookkeeping (called with the lock held) -------------------------------------------
    def _state_for(self, fd: int, sock: _socket.socket, me: int) -> tuple[_State, _State | None]:
        old = self._states.get(fd)
        if old is not None:
            owner = old.sock()
            if owner is not None and owner.fileno() == fd:
                return old, None  # another object for the same OS socket: same queues
            # The old socket was closed without cancel and its descriptor reused:
            # what it left queued can never run.
            old.closing = True
            aborted = [*old.r.queue, *old.w.queue]
            old.r.queue.clear()
            old.w.queue.clear()
            self._apply(old, 0)
            stale = None
            if aborted:
                old.done.extend((h, o, _ABORTED, 0) for h, _, o in aborted)
                if not old.deliverer:
                    old.deliverer = me
                    stale = old
        else:
            stale = None
        st = self._states[fd] = _State(fd, sock)
        return st, stale

    def _watch(self, st: _State, me: int) -> bool:
        """Bring the selector in line with ``st``'s queues.  If that fails (the
        socket is gone), complete its queued operations with the error and
        return True when this thread became their deliverer."""
        if st.closing:
            mask = 0
        else:
            engine = self._engine_ident
            r, w = st.r, st.w
            mask = (
                selectors.EVENT_READ if r.queue and (not r.runner or r.runner == engine) else 0
            ) | (selectors.EVENT_WRITE if w.queue and (not w.runner or w.runner == engine) else 0)
        if mask == st.mask:
            return False
        try:
            self._apply(st, mask)
        except Exception as exc:
            code = contain(exc, "watching the socket").wsa_code
            failed = [*st.r.queue, *st.w.queue]
            st.r.queue.clear()
            st.w.queue.clear()
            st.done.extend((h, o, code, 0) for h, _, o in failed)
            if failed and not st.deliverer:
                st.deliverer = me
                return True
        return False

    def _apply(self, st: _State, mask: int) -> None:
        if mask == st.mask:
            return
        selector = self._selector
        if selector is None:
            if not mask:
                return
            selector = self._start()
        if not mask:
            try:
                selector.unregister(st.fd)
            except (KeyError, ValueError, OSError):
                pass
            st.mask = 0
        elif not st.mask:
            selector.register(st.fd, mask, st)
            st.mask = mask
        else:
            selector.modify(st.fd, mask, st)
            st.mask = mask
        if not self._kernel_watched and threading.get_ident() != self._engine_ident:
            self._wake()

    def _start(self) -> selectors.BaseSelector:
        if self._closed:
            raise_wsa(WSAErrorCode.WSA_OPERATION_ABORTED, "the I/O engine is closed")
        selector = self._selector_factory()
        try:
            wake_r, wake_w = _socket.socketpair()
        except BaseException:
            selector.close()
            raise
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ, None)
        self._selector = selector
        self._kernel_watched = isinstance(selector, _KERNEL_WATCHED)
        self._wake_r, self._wake_w = wake_r, wake_w
        thread = threading.Thread(
            target=self._loop, args=(selector, wake_r), name="wspframe-io-engine", daemon=True
        )
        thread.start()
        self._thread = thread
        self._engine_ident = thread.ident or 0
        return selector

    def _wake(self) -> None:
        wake_w = self._wake_w
        if wake_w is not None:
            try:
                wake_w.send(b"\0")
            except OSError:
                pass  # full (a wakeup is pending anyway) or closed

    # -- the engine thread ----------------------------------------------------------------
    def _loop(self, selector: selectors.BaseSelector, wake_r: _socket.socket) -> None:
        me = threading.get_ident()
        read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
        while not self._closed:
            try:
                ready = selector.select()
            except (OSError, ValueError) as exc:
                if self._closed:
                    return  # closed under us
                # select/poll refuse a descriptor closed without cancel (epoll
                # just forgets it): fail what waited on it and go on.
                if not self._purge(me):
                    report_unraisable(exc, "wspframe I/O engine: the selector failed", self)
                    return
                continue
            for key, events in ready:
                st = key.data
                if st is None:
                    try:
                        while wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                if events & read:
                    self._service(st, st.r, me)
                if events & write:
                    self._service(st, st.w, me)

    def _purge(self, me: int) -> int:
        """Drop the sockets closed without cancel; their operations complete with
        WSAENOTSOCK.  Returns how many sockets were dropped."""
        dropped = 0
        drains = []
        with self._lock:
            for st in list(self._states.values()):
                owner = st.sock()
                if owner is not None and owner.fileno() == st.fd:
                    continue
                dropped += 1
                del self._states[st.fd]
                st.closing = True
                failed = [*st.r.queue, *st.w.queue]
                st.r.queue.clear()
                st.w.queue.clear()
                self._apply(st, 0)
                st.done.extend((h, o, _NOTSOCK, 0) for h, _, o in failed)
                if st.done and not st.deliverer:
                    st.deliverer = me
                    drains.append(st)
        for st in drains:
            self._drain(st, me, None)
        return dropped

    def _service(self, st: _State, d: _Direction, me: int) -> None:
        for _ in range(_BATCH):
            with self._lock:
                if st.closing or d.runner or not d.queue:
                    op = None
                    drain = self._watch(st, me)  # nothing to do: stop watching
                else:
                    op = d.queue.popleft()
                    d.runner = me
            if op is None:
                if drain:
                    self._drain(st, me, None)
                return
            if not self._run(st, d, op, me):
                return


def _attempt(attempt: Attempt) -> tuple[int, int]:
    """Run one attempt: (0, nbytes), (code, 0) on failure, (0, -1) if it would block."""
    try:
        return 0, attempt()
    except (BlockingIOError, InterruptedError):
        return 0, -1
    except OSError as exc:
        return from_os_error(exc).wsa_code, 0
    except Exception as exc:
        return contain(exc, "overlapped operation").wsa_code, 0

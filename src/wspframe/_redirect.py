"""The redirector: ``os.read``/``os.write``/``select`` on a minted handle reach
the provider (the seed's ReadFile/WriteFile paragraph).

Theory of operation
-------------------
A handle minted by ``create_socket_handle`` is one end of a socketpair; the
host keeps the other end.  For a socket whose redirection is on
(:meth:`wspframe.Socket.redirect`), the host's one redirector thread pumps
both ways through the chain's *overlapped* operations, so that no provider
thread ever blocks on the pump:

* **Application to chain** (the redirector thread).  When the host's end is
  readable, the thread reads a chunk and sends it down the chain
  (``send_overlapped``).  A send the provider completes at once (the usual
  case) changes nothing: the thread goes on reading.  Otherwise the host's end
  leaves the poll set until the send completes (flow control end to end).  End
  of file becomes ``shutdown(SD_SEND)``; a failed send shuts the host's end for
  reading, so the application's next writes fail (EPIPE).
* **Chain to application** (whichever thread completes the receive).  A
  ``recv_overlapped`` is always outstanding on the chain.  Its completion
  callback writes the bytes to the host's end right where it runs, usually in
  the thread whose send made them (the redirector thread itself, or a
  provider's), and posts the next receive: no hand-off to the redirector
  thread.  Only what the host's end does not take at once waits, and the
  thread writes it when the end becomes writable, then posts the next
  receive.  End of stream or an error shuts the host's end for writing, so
  ``os.read`` sees EOF.

The poll set is level-triggered; it changes only on the slow paths above (a
send that does not complete at once, a write that does not fit), never per
chunk.  With ``epoll`` a change from another thread takes effect at once;
other selectors are woken through a socketpair.  The two overlapped
structures of a socket are re-armed, never re-made: one receive and one send
are in flight at most.

Each byte crosses two extra kernel copies and a thread hop: the cost the seed
warns of.  The Socket API does not pay it, and IFS handles need none of it.
"""

from __future__ import annotations

import select
import selectors
import socket as _socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._errors import report_unraisable
from ._overlapped import Overlapped

if TYPE_CHECKING:
    from ._chain import Dispatch

__all__ = ["Redirector"]

#: Bytes per read from the host's end and per receive from the chain: a
#: small chunk after a short read (below the allocator's mmap threshold, where
#: ``recv(n)`` would map and unmap ``n`` bytes for a 64-byte message), a large
#: one while the stream fills them (fewer trips through the chain per byte).
_SMALL = 65536
_LARGE = 262144
#: SO_SNDBUF of both ends of a redirected handle's socketpair (the kernel
#: doubles it; capped by net.core.wmem_max): room for large chunks, so that
#: the pump rarely waits for the other side to read.
_SNDBUF = 1 << 20
#: Poll events (``select.POLLIN``/``POLLOUT``, the same bits for ``epoll``).
_IN = 1
_OUT = 4
#: Events on which the thread reads (error and hang-up make the read fail).
_READABLE = _IN | 8 | 16
_WRITABLE = _OUT | 8 | 16
_SD_SEND = 1


class _Pump:
    """The redirection of one socket: its host end and its chain."""

    __slots__ = (
        "broken",
        "closed",
        "eof",
        "fd",
        "mask",
        "outbox",
        "paused",
        "peer",
        "read_size",
        "recv",
        "recv_ov",
        "recv_size",
        "redirector",
        "send",
        "send_ov",
        "sending",
        "top",
    )

    def __init__(self, redirector: Redirector, top: Dispatch, peer: _socket.socket) -> None:
        self.redirector = redirector
        self.top = top
        self.peer = peer
        self.fd = peer.fileno()
        level = top.level
        self.send: Callable[..., Any] = level.bind("send_overlapped", top.context)
        self.recv: Callable[..., Any] = level.bind("recv_overlapped", top.context)
        self.send_ov = Overlapped.internal("send", self.sent)
        self.recv_ov = Overlapped.internal("recv", self.received)
        self.send_ov.pending = self.recv_ov.pending = False
        self.read_size = _SMALL  # of the next read from the host's end
        self.recv_size = _SMALL  # of the next receive from the chain
        self.outbox: memoryview | None = None  # chain -> application, not yet written
        self.sending = False  # a send down the chain is in flight
        self.paused = False  # the thread may have taken the end out of the poll set for it
        self.eof = False  # the application shut its end for writing
        self.broken = False  # a send failed: the application's writes are refused
        self.closed = False
        self.mask = 0  # events polled for ``peer`` (0: not in the poll set)

    def wanted(self) -> int:
        """The events to poll the host's end for now."""
        mask = 0 if self.sending or self.eof or self.broken else _IN
        return mask if self.outbox is None else mask | _OUT

    # -- application -> chain (the redirector thread) --------------------------------
    def pull(self) -> None:
        """Read what the application wrote and send it down the chain."""
        if self.sending or self.eof or self.broken:
            return
        try:
            data = self.peer.recv(self.read_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.read_size = _LARGE if len(data) >= _SMALL else _SMALL
        if not data:
            self.eof = True
            self.redirector._watch(self)
            try:
                self.top.shutdown(_SD_SEND)
            except Exception:  # the chain's socket is going away
                pass
            return
        ov = self.send_ov
        ov.pending = True
        self.sending = True
        try:
            self.send(data, 0, ov)
        except Exception:
            ov.pending = False
            self.sending = False
            self.refuse()
            return
        if self.sending:  # not done yet: stop reading until it is (see sent())
            self.paused = True
            self.redirector._watch(self)

    def sent(self, ov: Overlapped) -> None:
        """Completion of a send (any thread)."""
        if self.closed:
            return
        if ov.error:
            self.sending = False
            self.refuse()
            return
        # pull() sets ``paused`` before it looks at ``sending`` (under the lock,
        # in _watch); this clears ``sending`` before it looks at ``paused``: one
        # of the two sees the other, so the end never stays out of the poll set.
        self.sending = False
        if self.paused:
            self.redirector._watch(self)

    def refuse(self) -> None:
        """A send failed: refuse the application's writes from now on."""
        self.broken = True
        self.redirector._watch(self)
        try:
            self.peer.shutdown(_socket.SHUT_RD)
        except OSError:
            pass

    # -- chain -> application (any thread) --------------------------------------------
    def post(self) -> None:
        """Have a receive outstanding on the chain."""
        if self.closed:
            return
        ov = self.recv_ov
        ov.pending = True
        try:
            self.recv(self.recv_size, 0, ov)
        except Exception:
            ov.pending = False
            self.eof_to_app()

    def received(self, ov: Overlapped) -> None:
        """Completion of a receive: write it out here, then receive again."""
        if self.closed:
            return
        data = ov.data
        ov.data = None
        if ov.error or not data:
            self.eof_to_app()
            return
        self.recv_size = _LARGE if len(data) >= _SMALL else _SMALL
        try:
            n = self.peer.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:  # the application shut its end for reading: nobody wants it
            n = len(data)
        if n < len(data):
            self.outbox = memoryview(data)[n:]
            self.redirector._watch(self)  # the thread writes the rest (flush)
            return
        if self.closed:  # post(), inlined: this is the hot path
            return
        ov.pending = True
        try:
            self.recv(self.recv_size, 0, ov)
        except Exception:
            ov.pending = False
            self.eof_to_app()

    def flush(self) -> None:
        """Write what waits, now that the host's end is writable (the thread)."""
        out = self.outbox
        if out is None:
            return
        try:
            n = self.peer.send(out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = len(out)
        if n < len(out):
            self.outbox = out[n:]
            return
        self.outbox = None
        self.redirector._watch(self)
        self.post()

    def eof_to_app(self) -> None:
        try:
            self.peer.shutdown(_socket.SHUT_WR)
        except OSError:
            pass


class _Selector:
    """A poll set on :mod:`selectors` where ``epoll`` is missing: changes made
    by another thread take effect when the selecting thread is woken."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, fd: int, mask: int) -> None:
        self._selector.register(fd, _to_selector(mask))

    def modify(self, fd: int, mask: int) -> None:
        self._selector.modify(fd, _to_selector(mask))

    def unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def poll(self) -> Iterable[tuple[int, int]]:
        return [
            (
                key.fd,
                (_IN if events & selectors.EVENT_READ else 0)
                | (_OUT if events & selectors.EVENT_WRITE else 0),
            )
            for key, events in self._selector.select()
        ]

    def close(self) -> None:
        self._selector.close()


def _new_poller() -> Any:
    return select.epoll() if hasattr(select, "epoll") else _Selector()


def _set_sndbuf(fd: int) -> None:
    try:
        sock = _socket.socket(fileno=fd)
    except OSError:
        return
    try:
        if sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF) < _SNDBUF:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, _SNDBUF)
    except OSError:
        pass
    finally:
        sock.detach()


def _to_selector(mask: int) -> int:
    return (selectors.EVENT_READ if mask & _IN else 0) | (
        selectors.EVENT_WRITE if mask & _OUT else 0
    )


class Redirector:
    """One thread per host serving every redirected handle."""

    def __init__(self) -> None:
        poller = _new_poller()
        # epoll sees a change of the poll set made by any thread at once.
        self._native = not isinstance(poller, _Selector)
        self._poller = poller
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = _socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        poller.register(self._wake_r.fileno(), _IN)
        self._pumps: dict[int, _Pump] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wspframe-redirector", daemon=True)
        self._thread.start()
        self._ident = self._thread.ident

    # -- control ----------------------------------------------------------------
    def add(self, top: Dispatch, peer: _socket.socket) -> None:
        """Start pumping between ``top`` (the chain) and ``peer`` (the host's end)."""
        peer.setblocking(False)
        _set_sndbuf(peer.fileno())
        _set_sndbuf(top.handle)  # the application's end
        pump = _Pump(self, top, peer)
        with self._lock:
            if self._stopping:
                return
            self._pumps[pump.fd] = pump
        self._watch(pump)
        pump.post()

    def remove(self, peer_fd: int) -> None:
        """Stop pumping for the handle whose host end is ``peer_fd``."""
        with self._lock:
            pump = self._pumps.pop(peer_fd, None)
            if pump is None:
                return
            pump.closed = True
            if pump.mask:
                pump.mask = 0
                try:
                    self._poller.unregister(peer_fd)
                except (KeyError, ValueError, OSError):
                    pass
        if not self._native:
            self._wake()

    def close(self) -> None:
        """Stop the thread; leave no descriptor of our own behind."""
        with self._lock:
            self._stopping = True
            for pump in self._pumps.values():
                pump.closed = True
            self._pumps.clear()
        self._wake()
        if threading.get_ident() != self._ident:
            self._thread.join(5)
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _watch(self, pump: _Pump) -> None:
        """Bring the poll set in line with what ``pump`` waits for (any thread)."""
        with self._lock:
            if pump.closed:
                return
            mask = pump.wanted()
            if mask & _IN:
                pump.paused = False
            if mask == pump.mask:
                return
            try:
                if not mask:
                    self._poller.unregister(pump.fd)
                elif pump.mask:
                    self._poller.modify(pump.fd, mask)
                else:
                    self._poller.register(pump.fd, mask)
            except (KeyError, ValueError, OSError):  # closed meanwhile
                return
            pump.mask = mask
        if not self._native and threading.get_ident() != self._ident:
            self._wake()

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        poll = self._poller.poll
        pumps = self._pumps
        wake_fd = self._wake_r.fileno()
        while not self._stopping:
            try:
                ready = poll()
            except (OSError, ValueError):  # closed under us: close() from this thread
                if self._stopping:
                    return
                raise
            for fd, events in ready:
                pump = pumps.get(fd)
                if pump is None:
                    if fd == wake_fd:
                        self._drain_wakes()
                    continue
                try:
                    if events & _WRITABLE and pump.outbox is not None:
                        pump.flush()
                    if events & _READABLE and pump.mask & _IN:
                        pump.pull()
                except Exception as exc:  # a bug: keep serving the other handles
                    report_unraisable(exc, f"Exception redirecting handle {pump.top.handle}", pump)

    def _drain_wakes(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

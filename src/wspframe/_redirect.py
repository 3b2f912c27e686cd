"""The redirector: ``os.read``/``os.write``/``select`` on a minted handle reach
the provider (the seed's ReadFile/WriteFile paragraph).

Theory of operation
-------------------
A handle minted by ``create_socket_handle`` is one end of a socketpair; the
host keeps the other end.  For a socket whose redirection is on
(:meth:`wspframe.Socket.redirect`), the host's one redirector thread pumps
both ways through the chain's *overlapped* operations, so that no provider
thread ever blocks on the pump:

* bytes the application writes to the handle arrive on the host's end; the
  redirector reads them and sends them down the chain (``send_overlapped``),
  reading more only once that send completed (flow control end to end);
  end of file there becomes ``shutdown(SD_SEND)``;
* a ``recv_overlapped`` is always outstanding on the chain; what it delivers is
  written to the host's end (what the application's ``os.read`` then
  returns), and the next receive is issued once it is all written; end of
  stream or a reset shuts the host's end down, so ``os.read`` sees EOF.

Each byte crosses two extra kernel copies and a thread hop: the cost the seed
warns of.  The Socket API does not pay it, and IFS handles need none of it.
"""

from __future__ import annotations

import selectors
import socket as _socket
import threading
from typing import TYPE_CHECKING

from ._overlapped import Overlapped

if TYPE_CHECKING:
    from ._chain import Dispatch

__all__ = ["Redirector"]

_CHUNK = 65536
_KERNEL_WATCHED = tuple(
    getattr(selectors, name)
    for name in ("EpollSelector", "KqueueSelector")
    if hasattr(selectors, name)
)


class _Pump:
    """The redirection of one socket."""

    __slots__ = ("closed", "mask", "outbox", "peer", "reading_app", "top")

    def __init__(self, top: Dispatch, peer: _socket.socket) -> None:
        self.top = top
        self.peer = peer
        self.outbox = bytearray()  # chain -> application, not yet written
        self.reading_app = True  # waiting for the application's writes
        self.closed = False
        self.mask = 0  # events registered for ``peer`` (0: not registered)


class Redirector:
    """One thread per host serving every redirected handle."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = _socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._pumps: dict[int, _Pump] = {}
        self._stopping = False
        # epoll/kqueue watch an interest set changed from any thread at once:
        # no wakeup needed then (select/poll are woken through the socketpair).
        self._kernel_watched = isinstance(self._selector, _KERNEL_WATCHED)
        self._thread = threading.Thread(target=self._run, name="wspframe-redirector", daemon=True)
        self._thread.start()
        self._ident = self._thread.ident

    # -- control ----------------------------------------------------------------
    def add(self, top: Dispatch, peer: _socket.socket) -> None:
        """Start pumping between ``top`` (the chain) and ``peer`` (the host's end)."""
        peer.setblocking(False)
        pump = _Pump(top, peer)
        with self._lock:
            self._pumps[peer.fileno()] = pump
            self._update(pump)
        self._nudge()
        self._receive(pump)

    def remove(self, peer_fd: int) -> None:
        """Stop pumping for the handle whose host end is ``peer_fd``."""
        with self._lock:
            pump = self._pumps.pop(peer_fd, None)
            if pump is not None:
                pump.closed = True
                try:
                    self._selector.unregister(pump.peer)
                except (KeyError, ValueError):
                    pass
        self._wake()

    def close(self) -> None:
        """Stop the thread; leave no descriptor of our own behind."""
        with self._lock:
            self._stopping = True
            for pump in self._pumps.values():
                pump.closed = True
            self._pumps.clear()
        self._wake()
        self._thread.join(5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _nudge(self) -> None:
        """Wake the thread after an interest change, only where it needs it."""
        if not self._kernel_watched and threading.get_ident() != self._ident:
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def _update(self, pump: _Pump) -> None:
        # Called with the lock held: what the host's end waits for now.
        events = 0
        if pump.reading_app:
            events |= selectors.EVENT_READ
        if pump.outbox:
            events |= selectors.EVENT_WRITE
        if events == pump.mask or pump.closed:
            return
        try:
            if not events:
                self._selector.unregister(pump.peer)
            elif pump.mask:
                self._selector.modify(pump.peer, events, pump)
            else:
                self._selector.register(pump.peer, events, pump)
            pump.mask = events
        except (KeyError, ValueError, OSError):
            pass

    # -- chain -> application ------------------------------------------------------
    def _receive(self, pump: _Pump) -> None:
        if pump.closed:
            return
        ov = Overlapped.internal("recv", lambda ov: self._received(pump, ov))
        try:
            pump.top.recv_overlapped(_CHUNK, 0, ov)
        except Exception:
            self._eof_to_app(pump)

    def _received(self, pump: _Pump, ov: Overlapped) -> None:
        if pump.closed:
            return
        data = ov.data or b""
        if ov.error or not data:
            self._eof_to_app(pump)
            return
        with self._lock:
            if pump.outbox:
                pump.outbox += data
            else:  # nothing waiting: write it straight through, keep what is left
                try:
                    n = pump.peer.send(data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    n = len(data)
                if n < len(data):
                    pump.outbox += memoryview(data)[n:]
            self._flush(pump)
            again = not pump.outbox
            self._update(pump)
        self._nudge()
        if again:
            self._receive(pump)

    def _flush(self, pump: _Pump) -> None:
        # With the lock held: write what the host's end takes now.
        while pump.outbox:
            try:
                n = pump.peer.send(pump.outbox)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pump.outbox.clear()
                return
            del pump.outbox[:n]

    def _eof_to_app(self, pump: _Pump) -> None:
        try:
            pump.peer.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    # -- application -> chain ------------------------------------------------------
    def _read_app(self, pump: _Pump) -> None:
        try:
            data = pump.peer.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        with self._lock:
            pump.reading_app = False  # until this send completes
            if not data:
                self._update(pump)
        if not data:
            try:
                pump.top.shutdown(1)
            except Exception:
                pass
            return
        ov = Overlapped.internal("send", lambda ov: self._sent(pump, ov))
        try:
            pump.top.send_overlapped(data, 0, ov)
        except Exception:
            with self._lock:
                self._update(pump)
            return
        # Usually the send completed at once (in _sent): then nothing changes.
        with self._lock:
            self._update(pump)

    def _sent(self, pump: _Pump, ov: Overlapped) -> None:
        if pump.closed or ov.error:
            return
        with self._lock:
            pump.reading_app = True
            self._update(pump)
        self._nudge()

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            for key, mask in self._selector.select():
                pump = key.data
                if pump is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                if mask & selectors.EVENT_WRITE:
                    with self._lock:
                        self._flush(pump)
                        drained = not pump.outbox
                        self._update(pump)
                    if drained and not pump.closed:
                        self._receive(pump)
                if mask & selectors.EVENT_READ and not pump.closed:
                    self._read_app(pump)
            if self._stopping:
                return

"""Socket handles and the upcall table (``WPUCreateSocketHandle`` and friends).

Theory of operation
-------------------
A handle is an int that is a real OS file descriptor.

* An IFS provider's handle is its own OS socket: it registers it with
  :meth:`Upcalls.modify_ifs_handle` under its catalog id before returning it.
  An IFS layer registers the lower handle under its own (layered) entry id:
  the record then has several owners, the top one last.
* A non-IFS provider gets a handle minted by :meth:`Upcalls.create_socket_handle`:
  one end of a ``socketpair`` whose other end belongs to the host, so that the
  handle is indistinguishable from a file-system handle (``select``,
  ``os.read``) - the seed's redirector.  The context given at creation comes
  back from :meth:`Upcalls.query_socket_handle_context`.

The table is touched when sockets are made and closed, never per send or recv.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket as _socket
import stat
import threading
from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any

from ._errors import WSAErrorCode, raise_wsa, wsa_error
from ._spi import LayerSocket

if TYPE_CHECKING:
    from ._chain import NextLayer

__all__ = ["HandleRecord", "HandleTable", "Upcalls"]


@dataclasses.dataclass(slots=True)
class HandleRecord:
    """What the host knows of one handle."""

    handle: int
    ifs: bool
    owners: list[int]
    context: Any = None
    #: For a minted handle: the host's end of the socketpair.
    peer: _socket.socket | None = None

    @property
    def owner(self) -> int:
        """The catalog id of the top-most provider exposing this handle."""
        return self.owners[-1]


class HandleTable:
    """The host's table of handles, keyed by handle."""

    def __init__(self, is_catalog_id: Callable[[int], bool]) -> None:
        self._records: dict[int, HandleRecord] = {}
        # A socket's close holds the lock across its whole chain (Socket.close
        # sets ``closer`` meanwhile): its levels give up their handles one by
        # one, and a descriptor number the base has closed may be taken again
        # by another thread before every level above has let go.  Only then
        # does the table have to serialize: a registration or release by any
        # other thread while ``closer`` is set waits for the lock.  Otherwise
        # no record is shared (a fresh descriptor's is no one else's, and a
        # provider releases a handle before closing its descriptor), so they
        # take no lock.  Re-entrant: the closer's providers release under it.
        self._lock = threading.RLock()
        #: The thread id of the socket close in progress (0: none).
        self.closer = 0
        self._is_catalog_id = is_catalog_id

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, handle: object) -> bool:
        return handle in self._records

    def get(self, handle: int) -> HandleRecord | None:
        return self._records.get(handle)

    def handles(self) -> list[int]:
        with self._lock:
            return list(self._records)

    def _check_id(self, catalog_entry_id: int) -> None:
        if not isinstance(catalog_entry_id, int) or not self._is_catalog_id(catalog_entry_id):
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"catalog entry id {catalog_entry_id!r} is not installed in this host's catalog",
            )

    # -- the upcalls ----------------------------------------------------------
    def create(self, catalog_entry_id: int, context: Any) -> int:
        if catalog_entry_id.__class__ is not int or not self._is_catalog_id(catalog_entry_id):
            self._check_id(catalog_entry_id)
        try:
            mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise wsa_error(
                    WSAErrorCode.WSAEMFILE, f"no more descriptors for a new handle: {exc}"
                ) from exc
            raise wsa_error(
                WSAErrorCode.WSAENOBUFS, f"not enough buffers for a new handle: {exc}"
            ) from exc
        handle = mine.detach()
        record = HandleRecord(handle, False, [catalog_entry_id], context, theirs)
        closer = self.closer
        if closer and closer != get_ident():
            with self._lock:
                self._records[handle] = record
        else:
            self._records[handle] = record
        return handle

    def modify_ifs(self, catalog_entry_id: int, os_handle: int) -> int:
        if catalog_entry_id.__class__ is not int or not self._is_catalog_id(catalog_entry_id):
            self._check_id(catalog_entry_id)
        if not isinstance(os_handle, int) or os_handle < 0:
            raise_wsa(
                WSAErrorCode.WSAENOTSOCK, f"OS handle must be a descriptor, got {os_handle!r}"
            )
        records = self._records
        record = records.get(os_handle)
        if record is None or not record.ifs:
            # A layer stacking on a registered IFS handle needs no new check.
            try:
                mode = os.fstat(os_handle).st_mode
            except OSError:
                raise_wsa(WSAErrorCode.WSAENOTSOCK, f"OS handle {os_handle} is not open")
            if not stat.S_ISSOCK(mode):
                raise_wsa(WSAErrorCode.WSAENOTSOCK, f"OS handle {os_handle} is not a socket")
        closer = self.closer
        if closer and closer != get_ident():
            with self._lock:  # once the close is over (and ``closer`` clear), again
                return self.modify_ifs(catalog_entry_id, os_handle)
        if record is None:
            records[os_handle] = HandleRecord(os_handle, True, [catalog_entry_id])
        elif record.ifs:
            record.owners.append(catalog_entry_id)
        else:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"handle {os_handle} was minted by create_socket_handle; "
                "only a provider's own OS handle can be an IFS handle",
            )
        return os_handle

    def query(self, handle: int) -> Any:
        record = self._records.get(handle)
        if record is None:
            raise_wsa(WSAErrorCode.WSAENOTSOCK, f"handle {handle!r} is not a socket handle")
        if record.ifs:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"handle {handle} is an IFS handle; it has no context in the host",
            )
        return record.context

    def close(self, handle: int) -> None:
        closer = self.closer
        if closer and closer != get_ident():
            with self._lock:  # once the close is over (and ``closer`` clear), again
                self.close(handle)
                return
        record = self._records.get(handle)
        if record is None:
            raise_wsa(WSAErrorCode.WSAENOTSOCK, f"handle {handle!r} is not a socket handle")
        if record.ifs:
            owners = record.owners
            owners.pop()
            if not owners:
                del self._records[handle]
            return
        del self._records[handle]
        _close_minted(record)

    def discard(self, handle: int) -> HandleRecord | None:
        """Drop a handle whatever its owners (host cleanup); close it if minted."""
        with self._lock:
            record = self._records.pop(handle, None)
        if record is not None and not record.ifs:
            _close_minted(record)
        return record

    # -- the host's checks -----------------------------------------------------
    def check_owner(self, ctx: Any, level: NextLayer) -> None:
        """Reject a context whose handle the level did not obtain through the upcalls.

        On rejection the context is closed at its level (nothing is leaked) and
        WSAEINVALIDPROVIDER is raised.
        """
        problem = None
        handle = getattr(ctx, "handle", None)
        record = self._records.get(handle) if isinstance(handle, int) else None
        if not level.is_base and not isinstance(ctx, LayerSocket):
            problem = f"returned {ctx!r}, which is not a LayerSocket"
        elif record is None:
            problem = (
                f"returned handle {handle!r}, which it did not obtain from "
                "create_socket_handle or modify_ifs_handle"
            )
        elif record.owner != level.catalog_entry_id:
            problem = (
                f"returned handle {handle}, registered under catalog id {record.owner}, "
                f"not its own id {level.catalog_entry_id}"
            )
        elif level.ifs and not record.ifs:
            problem = (
                f"advertises XP1_IFS_HANDLES but returned handle {handle} minted by "
                "create_socket_handle"
            )
        if problem is None:
            return
        try:
            level.provider.close_socket(ctx)  # type: ignore[attr-defined]
        except Exception:
            pass
        if isinstance(handle, int) and handle in self._records:
            rec = self._records[handle]
            if rec.owner == level.catalog_entry_id:
                self.close(handle)
        raise_wsa(WSAErrorCode.WSAEINVALIDPROVIDER, f"provider {level.provider.name!r} {problem}")


def _close_minted(record: HandleRecord) -> None:
    try:
        os.close(record.handle)
    except OSError:
        pass
    if record.peer is not None:
        record.peer.close()


#: ``complete(handle, overlapped, error, nbytes)``: the host's completion routing.
Completer = Callable[[int, Any, int, int], None]


#: ``Completion(...)`` without the Python frame of a named tuple's ``__new__``.
_new_tuple = tuple.__new__


def _finish_unrouted(handle: int, ov: Any, error: int, nbytes: int) -> None:
    from ._overlapped import finish

    finish(ov, error, nbytes, None)


class Upcalls:
    """The upcall table (``WSPUPCALLTABLE``) a host gives each provider.

    Providers call these; they never touch the host otherwise.  ``complete`` is
    the host's completion routing (event, APC or the port associated with the
    handle); ``engine`` makes the host's I/O engine for IFS handles.  Both
    default to stand-ins that let a provider be exercised without a host.
    """

    __slots__ = (
        "_complete",
        "_engine",
        "_engine_factory",
        "_engine_lock",
        "_finish",
        "_packet",
        "_ports",
        "_table",
    )

    def __init__(
        self,
        table: HandleTable,
        complete: Completer | None = None,
        engine: Callable[[], Any] | None = None,
        ports: dict[int, Any] | None = None,
    ) -> None:
        from ._overlapped import Completion, finish

        self._table = table
        self._complete = complete or _finish_unrouted
        # The host's handle -> (port, key) associations: given, minted handles'
        # completions are routed here without the call through ``complete``
        # (which must route the same way: finish() with ports.get(handle)).
        self._ports = ports
        self._finish = finish
        self._packet = Completion
        self._engine_factory = engine
        self._engine: Any = None
        self._engine_lock = threading.Lock()

    def create_socket_handle(self, catalog_entry_id: int, context: Any) -> int:
        """``WPUCreateSocketHandle``: mint a new handle (a real descriptor) for a
        non-IFS provider; ``context`` comes back from
        :meth:`query_socket_handle_context`.  Raises WSAENOBUFS (or WSAEMFILE
        when descriptors run out); an unknown catalog id is WSAEINVAL.
        """
        return self._table.create(catalog_entry_id, context)

    def close_socket_handle(self, handle: int) -> None:
        """``WPUCloseSocketHandle``: release a handle (an IFS registration is
        dropped; the provider then closes its own OS handle).  Unknown:
        WSAENOTSOCK."""
        self._table.close(handle)

    def query_socket_handle_context(self, handle: int) -> Any:
        """``WPUQuerySocketHandleContext``: the context given at creation."""
        return self._table.query(handle)

    def modify_ifs_handle(self, catalog_entry_id: int, os_handle: int) -> int:
        """``WPUModifyIFSHandle``: register an IFS provider's own OS handle.

        Unknown catalog id: WSAEINVAL; not an open socket descriptor:
        WSAENOTSOCK.  Returns the handle to expose (the same descriptor).
        """
        return self._table.modify_ifs(catalog_entry_id, os_handle)

    # -- overlapped I/O --------------------------------------------------------------
    def complete_overlapped_request(
        self, handle: int, overlapped: Any, error: int, nbytes: int
    ) -> None:
        """``WPUCompleteOverlappedRequest``: announce that an overlapped operation
        on ``handle`` finished with ``error`` (0 or a WSA code) and ``nbytes``.

        Only for handles from :meth:`create_socket_handle` (others: WSAEINVAL,
        SPI rule A15; IFS providers complete through :attr:`io_engine`).  Set
        ``overlapped.data``/``address``/``flags`` first.  The host signals the
        event, queues the completion routine to the issuing thread, or posts to
        the port associated with ``handle``; completing twice is WSAEINVAL.
        """
        # Every non-IFS completion comes through here: each call and attribute
        # below is paid per completion, so the common case of overlapped.finish()
        # is inlined (tests/test_overlapped_primitives.py holds the two equal).
        record = self._table._records.get(handle)
        if record is None or record.ifs:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"complete_overlapped_request needs a handle from create_socket_handle, "
                f"got {handle!r}",
            )
        ports = self._ports
        if ports is None:
            self._complete(handle, overlapped, error, nbytes)
            return
        ov = overlapped
        if (
            not ov.pending  # finish() raises WSAEINVAL
            or ov._callback is not None  # a substitute
            or ov._routine is not None  # an APC to queue
            or error.__class__ is not int
            or nbytes.__class__ is not int
        ):
            self._finish(ov, error, nbytes, ports.get(handle))
            return
        # finish() for a client's overlapped without a completion routine:
        # record, the socket's bookkeeping, wake a waiter, set the event, post.
        ov.error = error
        ov.nbytes = nbytes
        ov.pending = False
        finisher = ov._finisher
        if finisher is not None:
            ov._finisher = None
            finisher(ov)  # may fail an accept: take the error it leaves
            error = ov.error
        ov._finished = True  # before looking for a waiter: see Overlapped.wait()
        if ov._waiter is not None:
            ov._waiter.set()
        if ov.event is not None:
            ov.event.set()
        route = ports.get(handle)
        if route is not None:
            port = route[0]
            if not port._closed:
                port._queue.put(_new_tuple(self._packet, (route[1], ov, nbytes, error)))

    def queue_apc(self, thread_ident: int, function: Callable[..., Any], *args: Any) -> None:
        """``WPUQueueApc``: run ``function(*args)`` in ``thread_ident``'s next alertable wait."""
        from ._overlapped import queue_apc

        queue_apc(thread_ident, function, *args)

    @property
    def io_engine(self) -> Any:
        """The host's I/O engine (one per host), through which IFS providers run
        overlapped operations on their OS handles and have them completed: the
        part the operating system plays for IFS handles in Winsock."""
        engine = self._engine
        if engine is None:
            with self._engine_lock:
                if self._engine is None:
                    if self._engine_factory is None:
                        from ._engine import IOEngine

                        self._engine_factory = lambda: IOEngine(self._complete)
                    self._engine = self._engine_factory()
                engine = self._engine
        return engine

    def _complete_any(self, handle: int, overlapped: Any, error: int, nbytes: int) -> None:
        # For the LayeredProvider base class: completes against any handle the
        # layer exposes, IFS or not (the host plays the OS's part for IFS ones).
        self._complete(handle, overlapped, error, nbytes)

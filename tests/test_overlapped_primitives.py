"""Events, alertable waits, APCs and completion ports on their own, and the
completion upcall's handle rule (SPI rule A15)."""

from __future__ import annotations

import threading
import time

import pytest

import wspframe
from wspframe import (
    WAIT_IO_COMPLETION,
    CompletionPort,
    Event,
    Overlapped,
    WSAError,
    WSAErrorCode,
    queue_apc,
    sleep_ex,
    wait_for_multiple_events,
)

C = WSAErrorCode


def test_wait_for_any_and_all_events() -> None:
    a, b = Event(), Event()
    with pytest.raises(TimeoutError) as info:
        wait_for_multiple_events([a, b], False, 0.01)
    assert info.value.wsa_code == C.WAIT_TIMEOUT  # type: ignore[attr-defined]
    b.set()
    assert wait_for_multiple_events([a, b], False, 0) == 1
    with pytest.raises(TimeoutError):
        wait_for_multiple_events([a, b], True, 0.01)  # wait_all: a is not set
    threading.Timer(0.02, a.set).start()
    assert wait_for_multiple_events([a, b], True, 5) == 0
    assert a.is_set() and b.is_set()  # manual reset: still set
    a.reset()
    assert not a.is_set()


def test_auto_reset_event() -> None:
    e = Event(auto_reset=True, initial=True)
    assert e.wait(0) == 0
    assert not e.is_set()
    with pytest.raises(TimeoutError):
        e.wait(0.01)


def test_apcs_run_in_their_thread_only_in_alertable_waits() -> None:
    ran: list[int] = []
    me = threading.get_ident()
    queue_apc(me, lambda: ran.append(threading.get_ident()))
    assert wspframe._overlapped.pending_apcs() == 1
    with pytest.raises(TimeoutError):
        wait_for_multiple_events([Event()], False, 0.01, alertable=False)
    assert ran == []  # not alertable: not run
    assert sleep_ex(0, alertable=False) == 0 and ran == []
    assert wait_for_multiple_events([Event()], False, 1, alertable=True) == WAIT_IO_COMPLETION
    assert ran == [me]
    assert sleep_ex(0.01) == 0  # nothing queued: the timeout passes

    # An APC queued from another thread wakes an alertable wait in this one.
    threading.Timer(0.02, queue_apc, args=(me, lambda: ran.append(2))).start()
    assert sleep_ex(5) == WAIT_IO_COMPLETION and ran == [me, 2]


def test_a_thread_never_runs_another_threads_apcs() -> None:
    ran: list[str] = []
    other_done = threading.Event()

    def other() -> None:
        sleep_ex(0.05)  # alertable, but the APC is not for this thread
        other_done.set()

    queue_apc(threading.get_ident(), lambda: ran.append("mine"))
    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert other_done.is_set() and ran == []
    assert sleep_ex(0) == WAIT_IO_COMPLETION and ran == ["mine"]


def test_completion_port_basics() -> None:
    port = CompletionPort(concurrency=2)
    assert port.concurrency == 2
    with pytest.raises(TimeoutError) as info:
        port.get(0.01)
    assert info.value.wsa_code == C.WAIT_TIMEOUT  # type: ignore[attr-defined]
    for i in range(5):
        port.post(key=i, nbytes=i * 10)
    assert [c.key for c in port.get_many(3, 0)] == [0, 1, 2]
    assert [c.nbytes for c in port.get_many(10, 0)] == [30, 40]

    # close() wakes a waiter with WSA_INVALID_HANDLE.
    result: list[int] = []

    def waiter() -> None:
        try:
            port.get(5)
        except WSAError as exc:
            result.append(exc.wsa_code)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.02)
    port.close()
    t.join(5)
    assert result == [C.WSA_INVALID_HANDLE]
    with pytest.raises(WSAError) as info2:
        port.post(1)
    assert info2.value.wsa_code == C.WSA_INVALID_HANDLE
    port.close()  # idempotent
    with pytest.raises(WSAError):
        CompletionPort(concurrency=-1)


def test_overlapped_state_and_reuse() -> None:
    ov = Overlapped()
    assert not ov.done() and "idle" in repr(ov)
    ov._start("send", None)
    with pytest.raises(WSAError) as info:
        ov._start("send", None)  # in use
    assert info.value.wsa_code == C.WSAEINVAL
    with pytest.raises(TimeoutError):
        ov.result(0.01)
    wspframe._overlapped.finish(ov, 0, 7, None)
    assert ov.done() and ov.result(0) == 7
    with pytest.raises(WSAError) as info:
        wspframe._overlapped.finish(ov, 0, 7, None)  # exactly once
    assert info.value.wsa_code == C.WSAEINVAL
    ov._start("recv", None)  # reusable once done
    assert not ov.done()


def test_complete_overlapped_request_is_only_for_minted_handles() -> None:
    with wspframe.Host(config=False) as host:
        with host.socket(protocol_info=host.entries_for("tcpip")[0]) as ifs:
            ov = Overlapped()
            ov._start("recv", None)
            with pytest.raises(WSAError) as info:
                host.upcalls.complete_overlapped_request(ifs.fileno(), ov, 0, 0)
            assert info.value.wsa_code == C.WSAEINVAL
        with pytest.raises(WSAError) as info:
            host.upcalls.complete_overlapped_request(10**6, ov, 0, 0)
        assert info.value.wsa_code == C.WSAEINVAL
        with host.socket(protocol_info=host.entries_for("memory")[0]) as minted:
            host.upcalls.complete_overlapped_request(minted.fileno(), ov, 0, 3)
        assert ov.result(0) is None and ov.nbytes == 3


def test_the_completion_upcall_notifies_exactly_as_finish_does() -> None:
    # complete_overlapped_request inlines finish()'s common case: each way of
    # hearing of a completion must come out the same through it.
    with wspframe.Host(config=False) as host:
        memory = host.entries_for("memory")[0]
        with host.socket(protocol_info=memory) as s:
            complete = host.upcalls.complete_overlapped_request
            h = s.fileno()
            port = CompletionPort()
            port.associate(s, key=9)

            # The event and the port; an IntEnum code and a bool count become ints.
            ev = Event()
            ov = Overlapped(ev)
            ov._start("recv", None)
            complete(h, ov, C.WSAECONNRESET, True)
            assert ev.is_set() and ov.done() and not ov.pending
            got = port.get(0)
            assert got == (9, ov, 1, 10054) and type(got) is wspframe.Completion
            assert type(got.error) is int and type(ov.error) is int and type(ov.nbytes) is int

            # A waiter wakes; completing twice is WSAEINVAL and posts nothing.
            ov = Overlapped()
            ov._start("send", None)
            woke: list[bool] = []
            t = threading.Thread(target=lambda: woke.append(ov.wait(5)))
            t.start()
            time.sleep(0.02)
            complete(h, ov, 0, 5)
            t.join(5)
            assert woke == [True] and port.get(0) == (9, ov, 5, 0)
            with pytest.raises(WSAError) as info:
                complete(h, ov, 0, 5)
            assert info.value.wsa_code == C.WSAEINVAL
            with pytest.raises(TimeoutError):
                port.get(0)

            # A substitute: only its layer hears of it.
            heard: list[Overlapped] = []
            sub = Overlapped().substitute(heard.append)
            complete(h, sub, 0, 3)
            assert heard == [sub] and sub.done()
            # A completion routine: an APC to the issuing thread, not the port.
            ran: list[tuple[int, int]] = []
            ov = Overlapped(Event())
            ov._start("recv", lambda err, n, o, flags: ran.append((err, n)))
            complete(h, ov, 0, 4)
            assert ov.done() and ran == [] and ov.event is not None and not ov.event.is_set()
            assert sleep_ex(0) == WAIT_IO_COMPLETION and ran == [(0, 4)]
            with pytest.raises(TimeoutError):
                port.get(0)

            # A closed port hears no more, even through an association still
            # in flight; its get() fails with WSA_INVALID_HANDLE.
            port.close()
            host._ports[h] = (port, 9)
            ov = Overlapped()
            ov._start("recv", None)
            complete(h, ov, 0, 1)
            assert ov.done() and port._queue.qsize() == 1  # the close marker only
            for _ in range(2):  # every waiter, not only the first
                with pytest.raises(WSAError) as info:
                    port.get()
                assert info.value.wsa_code == C.WSA_INVALID_HANDLE


def test_upcalls_without_a_host_complete_through_the_given_completer() -> None:
    table = wspframe._handles.HandleTable(lambda cid: True)
    seen: list[tuple[int, int, int]] = []
    upcalls = wspframe._handles.Upcalls(table, complete=lambda h, ov, e, n: seen.append((h, e, n)))
    handle = upcalls.create_socket_handle(1, None)
    try:
        upcalls.complete_overlapped_request(handle, Overlapped(), 0, 2)
        assert seen == [(handle, 0, 2)]
    finally:
        upcalls.close_socket_handle(handle)

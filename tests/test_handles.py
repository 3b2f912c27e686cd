"""The handle table's concurrency rule: registrations and releases take the
table's lock only while another thread is closing a socket's chain."""

from __future__ import annotations

import os
import socket
import threading

import wspframe
from wspframe import AF_INET, SOCK_STREAM
from wspframe._handles import HandleTable

PATIENCE = 5.0


def test_a_registration_waits_for_another_threads_close_in_progress() -> None:
    """A descriptor number freed by a closing base can be taken again before
    the layers above have let go: a registration of it from another thread
    must wait for the close to finish, not join the dying record."""
    table = HandleTable(lambda cid: True)
    first = socket.socket()
    second = socket.socket()
    fd = first.fileno()
    table.modify_ifs(1, fd)  # the base
    table.modify_ifs(2, fd)  # an IFS layer over it
    done = threading.Event()
    with table._lock:  # what Socket.close does around the chain
        table.closer = threading.get_ident()
        table.close(fd)  # the base lets go ...
        first.detach()
        os.dup2(second.fileno(), fd)  # ... and its number is taken again

        def register() -> None:
            table.modify_ifs(3, fd)
            done.set()

        thread = threading.Thread(target=register)
        thread.start()
        assert not done.wait(0.2), "the registration joined a record still being closed"
        table.close(fd)  # the layer lets go: the record goes
        table.closer = 0
    assert done.wait(PATIENCE)
    thread.join(PATIENCE)
    record = table.get(fd)
    assert record is not None and record.owners == [3]
    table.close(fd)
    os.close(fd)
    second.close()


def test_the_closing_thread_registers_and_releases_without_waiting() -> None:
    table = HandleTable(lambda cid: True)
    s = socket.socket()
    with table._lock:
        table.closer = threading.get_ident()
        table.modify_ifs(1, s.fileno())
        table.close(s.fileno())
        table.closer = 0
    assert len(table) == 0
    s.close()


def test_a_socket_close_leaves_no_close_in_progress() -> None:
    with wspframe.Host(chains=["passthrough,tcpip"], config=False) as host:
        s = host.socket(AF_INET, SOCK_STREAM)
        s.close()
        assert host._table.closer == 0
        assert host.open_handles() == []

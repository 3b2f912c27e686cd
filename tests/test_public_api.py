from __future__ import annotations

import collections

import wspframe


def test_every_public_name_is_exported_once() -> None:
    counts = collections.Counter(wspframe.__all__)
    assert [name for name, n in counts.items() if n > 1] == []
    missing = [name for name in wspframe.__all__ if not hasattr(wspframe, name)]
    assert missing == []


def test_no_private_module_leaks_into_all() -> None:
    assert not [name for name in wspframe.__all__ if name.startswith("_") and name != "__version__"]


def test_design_surface_is_present() -> None:
    for name in (
        "Host", "Socket", "Catalog", "ProtocolInfo", "ServiceProvider", "LayeredProvider",
        "Upcalls", "hookimpl", "WSAError", "AF_INET", "SOCK_STREAM", "IPPROTO_TCP",
        "WSA_FLAG_OVERLAPPED", "FROM_PROTOCOL_INFO", "MAX_PROTOCOL_CHAIN", "XP1", "PFL",
    ):  # fmt: skip
        assert name in wspframe.__all__, name
    assert wspframe.WSAEAFNOSUPPORT == 10047
    assert wspframe.MAX_PROTOCOL_CHAIN == 7
    assert wspframe.FROM_PROTOCOL_INFO == -1
    assert repr(wspframe.XP1.IFS_HANDLES) == "<XP1.IFS_HANDLES: 131072>"


def test_address_families_take_the_platform_values() -> None:
    import socket

    assert wspframe.AF_INET6 == socket.AF_INET6
    assert wspframe.SOCK_DGRAM == socket.SOCK_DGRAM
    assert wspframe.IPPROTO_UDP == socket.IPPROTO_UDP

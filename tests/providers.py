"""Provider classes the tests plug into a Host (no entry point needed)."""

from __future__ import annotations

import socket
from typing import Any

import wspframe
from wspframe import PFL, XP1, ProtocolInfo, WSAErrorCode
from wspframe._tcpip import TcpipProvider


def entries(prefix: str, **kw: Any) -> tuple[ProtocolInfo, ...]:
    return tuple(
        p.replace(name=p.name.replace("tcpip", prefix, 1), **kw) for p in TcpipProvider.protocols
    )


class RecordingBase(TcpipProvider):
    """tcpip under another name, recording what its socket() receives."""

    name = "recbase"
    protocols = entries("recbase")
    seen: list[ProtocolInfo] = []

    def socket(
        self, af: int, type: int, protocol: int, protocol_info: ProtocolInfo, group: int, flags: int
    ) -> Any:
        RecordingBase.seen.append(protocol_info)
        return super().socket(af, type, protocol, protocol_info, group, flags)


class RecordingLayer(wspframe.LayeredProvider):
    """Records the protocol info each of its sockets was created with."""

    name = "reclayer"
    seen: list[ProtocolInfo] = []

    def configure(self, options: Any) -> None:
        pass  # accepts any option, so several can be stacked

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        RecordingLayer.seen.append(protocol_info)
        return super().socket(next, af, type, protocol, protocol_info, group, flags)


class ForeignInfoLayer(wspframe.LayeredProvider):
    """Breaks the propagation rule: passes the base's info to a layer / its own to the base."""

    name = "foreigninfo"

    def socket(self, next, af, type, protocol, protocol_info, group, flags):  # type: ignore[no-untyped-def]
        wrong = protocol_info.replace(name="mangled")
        lower = next.socket(af, type, protocol, wrong, group, flags)
        return self.wrap(lower, protocol_info, next)


class DecliningBase(TcpipProvider):
    """Declines every socket with WSAEINPROGRESS (SPI rule A3)."""

    name = "decliner"
    protocols = entries("decliner")

    def socket(self, *args: Any) -> Any:
        wspframe._errors.raise_wsa(WSAErrorCode.WSAEINPROGRESS, "busy")


class FailingStartBase(TcpipProvider):
    name = "failstart"
    protocols = entries("failstart")

    def startup(self, upcalls: Any) -> None:
        raise RuntimeError("cannot start")


class NetDownBase(TcpipProvider):
    name = "netdown"
    protocols = entries("netdown")

    def startup(self, upcalls: Any) -> None:
        wspframe._errors.raise_wsa(WSAErrorCode.WSAENETDOWN, "no network")


class MissingOpBase(wspframe.ServiceProvider):
    """Lacks most of the dispatch table."""

    name = "missingop"
    protocols = entries("missingop")

    def socket(self, *args: Any) -> Any:  # pragma: no cover - never reached
        raise AssertionError


class BogusHandleBase(TcpipProvider):
    """Returns a handle it did not obtain through the upcalls."""

    name = "bogushandle"
    protocols = entries("bogushandle")

    def socket(
        self, af: int, type: int, protocol: int, protocol_info: ProtocolInfo, group: int, flags: int
    ) -> Any:
        s = wspframe._tcpip.TcpipSocket(socket.AF_INET, socket.SOCK_STREAM)
        s.handle = s.fileno()
        s.protocol_info = protocol_info
        return s


class LyingIfsBase(TcpipProvider):
    """Advertises XP1_IFS_HANDLES but mints its handles with create_socket_handle."""

    name = "lyingifs"
    protocols = entries("lyingifs")

    def socket(
        self, af: int, type: int, protocol: int, protocol_info: ProtocolInfo, group: int, flags: int
    ) -> Any:
        s = wspframe._tcpip.TcpipSocket(socket.AF_INET, socket.SOCK_STREAM)
        s.protocol_info = protocol_info
        s.handle = self.upcalls.create_socket_handle(protocol_info.catalog_entry_id, s)
        return s

    def close_socket(self, s: Any) -> None:
        self.upcalls.close_socket_handle(s.handle)
        s.close()


class MultipointBase(TcpipProvider):
    name = "mpoint"
    protocols = (
        TcpipProvider.protocols[1].replace(
            name="mpoint [rooted]",
            protocol=200,
            service_flags=XP1(0x20609)
            | XP1.SUPPORT_MULTIPOINT
            | XP1.MULTIPOINT_CONTROL_PLANE
            | XP1.MULTIPOINT_DATA_PLANE,
            provider_flags=PFL(0),
        ),
        TcpipProvider.protocols[1].replace(
            name="mpoint [nonrooted]",
            protocol=201,
            service_flags=XP1(0x20609) | XP1.SUPPORT_MULTIPOINT,
            provider_flags=PFL(0),
        ),
    )

    def socket(
        self, af: int, type: int, protocol: int, protocol_info: ProtocolInfo, group: int, flags: int
    ) -> Any:
        return super().socket(af, type, 17, protocol_info.replace(protocol=17), group, flags)


class RangeBase(TcpipProvider):
    """One UDP entry covering protocols 150..155."""

    name = "rangebase"
    protocols = (
        TcpipProvider.protocols[1].replace(
            name="rangebase [150-155]", protocol=150, protocol_max_offset=5, provider_flags=PFL(0)
        ),
    )

    def socket(
        self, af: int, type: int, protocol: int, protocol_info: ProtocolInfo, group: int, flags: int
    ) -> Any:
        return super().socket(af, type, 17, protocol_info.replace(protocol=17), group, flags)


class ExplodingLayer(wspframe.LayeredProvider):
    """Raises a plain Python exception from send."""

    name = "exploding"

    def send(self, s: Any, data: Any, flags: int) -> int:
        raise ZeroDivisionError("layer bug")


class SendOnlyLayer(wspframe.LayeredProvider):
    name = "sendonly"
    calls = 0

    def send(self, s: Any, data: Any, flags: int) -> int:
        SendOnlyLayer.calls += 1
        return int(s.lower.send(data, flags))


class NonIfsLayer(wspframe.LayeredProvider):
    """A layer that mints its own handles (sees os.read/os.write)."""

    name = "nonifs"
    ifs = False


class UpperSocket(wspframe.LayerSocket):
    """The fast form: ``recv`` defined on the socket class."""

    __slots__ = ("received",)

    def __init__(self, provider: Any, lower: Any, protocol_info: Any) -> None:
        super().__init__(provider, lower, protocol_info)
        self.received = 0

    def recv(self, bufsize: int, flags: int) -> bytes:
        data = bytes(self.lower.recv(bufsize, flags))
        self.received += len(data)
        return data.upper()


class FastUpperLayer(wspframe.LayeredProvider):
    """Upper-cases what it receives, in the fast form."""

    name = "fastupper"
    socket_class = UpperSocket


class TwiceSocket(wspframe.LayerSocket):
    __slots__ = ()

    def send(self, data: Any, flags: int) -> int:
        return int(self.lower.send(data, flags))


class TwiceLayer(wspframe.LayeredProvider):
    """Defines send both on the provider and on its socket class: a defect."""

    name = "twice"
    socket_class = TwiceSocket

    def send(self, s: Any, data: Any, flags: int) -> int:
        return int(s.lower.send(data, flags))


ALL = [
    RecordingBase, RecordingLayer, ForeignInfoLayer, DecliningBase, FailingStartBase,
    NetDownBase, MissingOpBase, BogusHandleBase, LyingIfsBase, MultipointBase, RangeBase,
    ExplodingLayer, SendOnlyLayer, NonIfsLayer, FastUpperLayer, TwiceLayer,
]  # fmt: skip

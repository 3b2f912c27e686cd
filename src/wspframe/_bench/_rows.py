"""The suite: the default rows (the issue's targets table) and rows for named chains."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Final

from .._host import Host
from ._callgrind import CALLGRIND_LAYERS, instructions
from ._common import MAX_LAYERS, Context, _base_of, _reference
from ._layers import BenchFastLayer, frames_for, layered_spec
from ._port import _PRODUCERS, completion_port, completion_port_end_to_end, port_floor
from ._redirect import redirect_round_trip, redirect_round_trip_floor, redirect_throughput
from ._report import NOT_INSTALLED, Row, Target
from ._stream import (
    create_close,
    round_trip,
    round_trip_frames,
    throughput,
    throughput_control,
    throughput_frames,
)

# -- the suite ---------------------------------------------------------------------------------
Plan = list[tuple[Row, Callable[[Row], Row]]]

_FLOOR_NOTE: Final = (
    "no framework: one plain relay object per frame, as many frames per call as the "
    "chain runs (the Socket API's, one per layer, the base's)"
)


def _nothing(row: Row) -> Row:
    return row


def _faults_installed() -> bool:
    try:
        host = Host(config=False)
    except Exception:
        return False
    return "faults" in host.discovery.providers


def default_rows(ctx: Context) -> Plan:
    """The rows of the issue's targets table, with the informational ones next to them."""
    tcp3p = layered_spec("passthrough", 3, "tcpip")
    tcp6p = layered_spec("passthrough", MAX_LAYERS, "tcpip")
    tcp3r = layered_spec(BenchFastLayer.name, 3, "tcpip")
    tcp6r = layered_spec(BenchFastLayer.name, MAX_LAYERS, "tcpip")
    out: Plan = []

    def tput(key: str, title: str, spec: str, target: Target | None, note: str = "") -> None:
        ref = _reference(_base_of(spec))
        row = Row(key, title, "MiB/s", ref, spec, "ratio", target, note=note)
        out.append((row, functools.partial(throughput, ctx, spec=spec)))

    def rtt(key: str, title: str, spec: str, pin: bool, target: Target | None) -> None:
        ref = _reference(_base_of(spec))
        row = Row(key, title, "µs", ref, spec, "ratio", target)
        out.append((row, functools.partial(round_trip, ctx, spec=spec, pin=pin)))

    seven = "7-long chain: MAX_PROTOCOL_CHAIN counts the base"
    tput("tput.tcpip.bare", "64 KiB throughput, bare tcpip / raw TCP", "tcpip", None)
    out.append(
        (
            Row(
                "tput.tcpip.control",
                "64 KiB throughput, A/A control: a second raw TCP pair / raw TCP",
                "MiB/s",
                "raw TCP",
                "raw TCP",
                "ratio",
                None,
                note="no chain at all: its spread is the noise of a throughput row here",
            ),
            functools.partial(throughput_control, ctx),
        )
    )
    tput(
        "tput.tcpip.pass3",
        "64 KiB throughput, 3 passthrough layers over tcpip / raw TCP",
        tcp3p,
        Target(">=", 0.95),
        "passthrough overrides nothing: skipped",
    )
    tput(
        "tput.tcpip.relay3",
        "64 KiB throughput, 3 send/recv pass-through layers over tcpip / raw TCP",
        tcp3r,
        Target(">=", 0.95),
    )
    tput(
        "tput.tcpip.pass6",
        "64 KiB throughput, 6 passthrough layers over tcpip / raw TCP",
        tcp6p,
        Target(">=", 0.93),
        f"{seven}; passthrough overrides nothing: skipped",
    )
    tput(
        "tput.tcpip.relay6",
        "64 KiB throughput, 6 send/recv pass-through layers over tcpip / raw TCP",
        tcp6r,
        Target(">=", 0.93),
        seven,
    )
    for layers in (3, MAX_LAYERS):
        frames = frames_for(layers)
        out.append(
            (
                Row(
                    f"tput.tcpip.floor{layers}",
                    f"64 KiB throughput, {frames} plain Python frames over raw TCP / raw TCP "
                    f"(the floor of {layers} send/recv layers)",
                    "MiB/s",
                    "raw TCP",
                    f"raw TCP under {frames} frames",
                    "ratio",
                    None,
                    note=_FLOOR_NOTE,
                ),
                functools.partial(throughput_frames, ctx, frames=frames),
            )
        )
    tput(
        "tput.memory",
        "64 KiB throughput, memory / AF_UNIX socketpair",
        "memory",
        Target(">=", 1.5),
    )
    rtt(
        "rtt.tcpip.bare.pinned",
        "64 B round trip, bare tcpip / raw TCP, same CPU",
        "tcpip",
        True,
        None,
    )
    rtt(
        "rtt.tcpip.pass3.pinned",
        "64 B round trip, 3 passthrough layers over tcpip / raw TCP, same CPU",
        tcp3p,
        True,
        Target("<=", 1.05),
    )
    rtt(
        "rtt.tcpip.relay3.pinned",
        "64 B round trip, 3 send/recv pass-through layers over tcpip / raw TCP, same CPU",
        tcp3r,
        True,
        Target("<=", 1.05),
    )
    rtt(
        "rtt.tcpip.relay3.unpinned",
        "64 B round trip, 3 send/recv pass-through layers over tcpip / raw TCP, unpinned",
        tcp3r,
        False,
        None,
    )
    rtt(
        "rtt.tcpip.pass6.pinned",
        "64 B round trip, 6 passthrough layers over tcpip / raw TCP, same CPU",
        tcp6p,
        True,
        Target("<=", 1.08),
    )
    rtt(
        "rtt.tcpip.relay6.pinned",
        "64 B round trip, 6 send/recv pass-through layers over tcpip / raw TCP, same CPU",
        tcp6r,
        True,
        Target("<=", 1.08),
    )
    for layers in (3, MAX_LAYERS):
        frames = frames_for(layers)
        out.append(
            (
                Row(
                    f"rtt.tcpip.floor{layers}.pinned",
                    f"64 B round trip, {frames} plain Python frames over raw TCP / raw TCP, "
                    f"same CPU (the floor of {layers} send/recv layers)",
                    "µs",
                    "raw TCP",
                    f"raw TCP under {frames} frames",
                    "ratio",
                    None,
                    note=_FLOOR_NOTE,
                ),
                functools.partial(round_trip_frames, ctx, frames=frames, pin=True),
            )
        )
    rtt(
        "rtt.memory.pinned",
        "64 B round trip, memory / AF_UNIX socketpair, same CPU",
        "memory",
        True,
        Target("<=", 1.2),
    )
    rtt(
        "rtt.memory.unpinned",
        "64 B round trip, memory / AF_UNIX socketpair, unpinned",
        "memory",
        False,
        None,
    )

    per_layer = (
        ("instr.layer", "fast", "fast form (send/recv on the socket class)", Target("<=", 600)),
        ("instr.layer.spi", "relay", "provider-method form", None),
    )
    for key, variant, form, target in per_layer:
        row = Row(
            key,
            f"instructions per send/recv pass-through layer per operation, {form}",
            "instr",
            f"{CALLGRIND_LAYERS} layers over tcpip",
            f"{2 * CALLGRIND_LAYERS} layers over tcpip",
            "per-layer",
            target,
            note=f"what each of {CALLGRIND_LAYERS} more layers adds",
        )
        out.append(
            (
                row,
                functools.partial(
                    instructions,
                    ctx,
                    variant=f"{variant}2x",
                    lower=variant,
                    layers=CALLGRIND_LAYERS,
                ),
            )
        )
    first_i = Row(
        "instr.first",
        "instructions per layer per operation, 3 fast-form layers over a bare chain",
        "instr",
        "bare tcpip",
        layered_spec(BenchFastLayer.name, CALLGRIND_LAYERS, "tcpip"),
        "per-layer",
        None,
        note="a bare chain calls the OS socket natively; under layers, tcpip's context function",
    )
    out.append(
        (
            first_i,
            functools.partial(
                instructions, ctx, variant="fast", lower="bare", layers=CALLGRIND_LAYERS
            ),
        )
    )
    pass_i = Row(
        "instr.passthrough",
        "instructions per passthrough layer per operation (overrides nothing)",
        "instr",
        "bare tcpip",
        layered_spec("passthrough", CALLGRIND_LAYERS, "tcpip"),
        "per-layer",
        Target("==", 0, 1.0),
    )
    out.append(
        (
            pass_i,
            functools.partial(
                instructions, ctx, variant="pass", lower="bare", layers=CALLGRIND_LAYERS
            ),
        )
    )
    base_i = Row(
        "instr.bare",
        "instructions per operation added by a bare tcpip chain to a raw socket",
        "instr",
        "raw TCP",
        "tcpip",
        "difference",
        None,
        note="the Socket method, calling the OS socket's method natively",
    )
    out.append((base_i, functools.partial(instructions, ctx, variant="bare", lower="raw")))

    out.append(
        (
            Row(
                "port",
                "completion port, completions per second / bare SimpleQueue hand-off",
                "k/s",
                "SimpleQueue",
                "port (upcall completion)",
                "ratio",
                Target(">=", 0.5),
                note=f"{_PRODUCERS} producer threads complete, 1 consumer",
            ),
            functools.partial(completion_port, ctx),
        )
    )
    out.append(
        (
            Row(
                "port.floor",
                "completion port floor: a plain Python complete()/get() around a SimpleQueue "
                "/ bare SimpleQueue hand-off",
                "k/s",
                "SimpleQueue",
                "plain Python port",
                "ratio",
                None,
                note="the least any completion port written in Python costs",
            ),
            functools.partial(port_floor, ctx),
        )
    )
    out.append(
        (
            Row(
                "port.end_to_end",
                "completion port, memory recv_overlapped completed by the peer's send "
                "/ bare SimpleQueue hand-off",
                "k/s",
                "SimpleQueue",
                "memory + port",
                "ratio",
                None,
                note=f"{_PRODUCERS} producer threads send, 1 consumer",
            ),
            functools.partial(completion_port_end_to_end, ctx),
        )
    )
    out.append(
        (
            Row(
                "redirect.tput",
                "redirected handle (os.write -> peer os.read, memory) / raw socketpair",
                "MiB/s",
                "socketpair os.write/os.read",
                "memory, redirected",
                "ratio",
                Target(">=", 0.4),
            ),
            functools.partial(redirect_throughput, ctx),
        )
    )
    out.append(
        (
            Row(
                "redirect.rtt",
                "redirected handle, 64 B round trip added over the Socket API, same CPU",
                "µs",
                "memory Socket API",
                "memory, redirected",
                "difference",
                Target("<=", 20.0),
            ),
            functools.partial(redirect_round_trip, ctx),
        )
    )
    out.append(
        (
            Row(
                "redirect.rtt.floor",
                "a bare pump thread between two socketpairs, 64 B round trip added over "
                "one socketpair, same CPU",
                "µs",
                "socketpair",
                "socketpair, pump, socketpair",
                "difference",
                None,
                note="the least any redirector made of a thread and OS descriptors adds",
            ),
            functools.partial(redirect_round_trip_floor, ctx),
        )
    )
    out.append(
        (
            Row(
                "create.tcpip.bare",
                "socket create + close, bare tcpip / raw socket.socket()",
                "µs",
                "socket.socket()",
                "tcpip",
                "ratio",
                None,
            ),
            functools.partial(create_close, ctx, spec="tcpip"),
        )
    )
    out.append(
        (
            Row(
                "create.tcpip.pass3",
                "socket create + close, 3 layers over tcpip / raw socket.socket()",
                "µs",
                "socket.socket()",
                tcp3p,
                "ratio",
                Target("<=", 2.0),
            ),
            functools.partial(create_close, ctx, spec=tcp3p),
        )
    )
    faults = Row(
        "tput.tcpip.faults",
        "64 KiB throughput, faults layer with nothing active over tcpip / raw TCP",
        "MiB/s",
        "raw TCP",
        "faults,tcpip",
        "ratio",
        Target(">=", 0.95),
    )
    if _faults_installed():
        out.append((faults, functools.partial(throughput, ctx, spec="faults,tcpip")))
    else:
        faults.status = NOT_INSTALLED
        faults.note = "no provider named 'faults' is discoverable (plugins/wspframe-faults)"
        out.append((faults, _nothing))
    return out


def spec_rows(ctx: Context, specs: Sequence[str]) -> Plan:
    """Rows for chains named on the command line: throughput, round trip, create + close."""
    out: Plan = []
    for spec in specs:
        base = _base_of(spec)
        ref = _reference(base)
        out.append(
            (
                Row(
                    f"tput:{spec}",
                    f"64 KiB throughput, {spec} / {ref}",
                    "MiB/s",
                    ref,
                    spec,
                    "ratio",
                    None,
                ),
                functools.partial(throughput, ctx, spec=spec),
            )
        )
        out.append(
            (
                Row(
                    f"rtt:{spec}",
                    f"64 B round trip, {spec} / {ref}, same CPU",
                    "µs",
                    ref,
                    spec,
                    "ratio",
                    None,
                ),
                functools.partial(round_trip, ctx, spec=spec, pin=True),
            )
        )
        if base != "memory":
            out.append(
                (
                    Row(
                        f"create:{spec}",
                        f"socket create + close, {spec} / raw socket.socket()",
                        "µs",
                        "socket.socket()",
                        spec,
                        "ratio",
                        None,
                    ),
                    functools.partial(create_close, ctx, spec=spec),
                )
            )
    return out

"""Option parsing: the accepted forms, and the messages for the rejected ones."""

from __future__ import annotations

import re

import pytest
from wspframe_faults import FailRule, FaultsLayer, Toxics, parse_options

import wspframe
from wspframe import ChainSpecError


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ({"latency": "20ms"}, "latency", 0.02),
        ({"latency": "1.5s"}, "latency", 1.5),
        ({"latency": "500us"}, "latency", 0.0005),
        ({"latency": "0"}, "latency", 0.0),
        ({"latency": 0.25}, "latency", 0.25),
        ({"bandwidth": "100KB/s"}, "bandwidth", 100_000.0),
        ({"bandwidth": "1.5MB/s"}, "bandwidth", 1_500_000.0),
        ({"bandwidth": "512KiB/s"}, "bandwidth", 524_288.0),
        ({"slice": "64"}, "slice", 64),
        ({"limit": "1KiB"}, "limit", 1024),
        ({"limit": "0"}, "limit", 0),
        ({"drop": "5%"}, "drop", 0.05),
        ({"drop": "0.25"}, "drop", 0.25),
        ({"toxicity": 1}, "toxicity", 1.0),
        ({"timeout": "0"}, "timeout", 0.0),
        ({"netdown": "2s"}, "netdown", (0.0, 2.0)),
        ({"netdown": "1s..3s"}, "netdown", (1.0, 3.0)),
        ({"direction": "both"}, "direction", "both"),
        ({"seed": "42"}, "seed", 42),
    ],
)
def test_accepted_forms(options: dict[str, object], field: str, value: object) -> None:
    assert getattr(parse_options(options), field) == pytest.approx(value)


def test_fail_rules() -> None:
    toxics = parse_options({"fail": "connect:WSAECONNREFUSED:0.5;send:wsaenobufs"})
    assert toxics.fail == (
        FailRule("connect", wspframe.WSAErrorCode.WSAECONNREFUSED, 0.5),
        FailRule("send", wspframe.WSAErrorCode.WSAENOBUFS, 1.0),
    )
    assert str(toxics) == "fail=connect:WSAECONNREFUSED:0.5;send:WSAENOBUFS:1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"latency": "20"},
            "latency must be a duration such as 20ms, 1.5s or 500us (0 for none), got '20'",
        ),
        ({"latency": "-5ms"}, "latency must be a duration"),
        ({"jitter": "fast"}, "jitter must be a duration"),
        (
            {"bandwidth": "10Mbit"},
            "bandwidth must be a rate such as 100KB/s, 1.5MB/s or 512KiB/s, got '10Mbit'",
        ),
        ({"bandwidth": "0KB/s"}, "bandwidth must be a rate"),
        ({"slice": "big"}, "slice must be a size in bytes such as 1500, 64KB or 1MiB, got 'big'"),
        (
            {"drop": "1.5"},
            "drop must be a probability from 0 to 1 such as 0.05, or a percentage such as 5%, "
            "got '1.5'",
        ),
        ({"reorder": "120%"}, "reorder must be a probability"),
        (
            {"direction": "sideways"},
            "direction must be up (what a socket sends), down (what it receives) or both, "
            "got 'sideways'",
        ),
        ({"seed": "-1"}, "seed must be an integer >= 0, got '-1'"),
        ({"fail": "connect"}, "fail must be OP:WSAEXXX[:PROBABILITY]"),
        (
            {"fail": "teleport:WSAECONNREFUSED"},
            "with OP one of socket, bind, listen, accept, connect",
        ),
        (
            {"fail": "connect:ECONNREFUSED"},
            "with a Winsock error name such as WSAECONNREFUSED; got 'ECONNREFUSED'",
        ),
        ({"fail": "connect:WSAECONNREFUSED:2"}, "fail must be a probability"),
        ({"netdown": "3s..1s"}, "netdown must end after it starts"),
        (
            {"netdown": "soon"},
            "netdown must be a duration (down from when it takes effect) or START..END",
        ),
        ({"slice_variation": "10"}, "slice_variation needs slice"),
        (
            {"slice": "10", "slice_variation": "10"},
            "slice_variation must be smaller than slice (10 bytes), got 10",
        ),
        ({"latncy": "5ms"}, "unknown option(s) latncy; options: latency, jitter, bandwidth"),
    ],
)
def test_rejected_values_name_the_option_and_the_form(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_options(options)


def test_a_bad_option_is_a_chain_spec_error_when_the_chain_is_built() -> None:
    with pytest.raises(ChainSpecError) as info:
        wspframe.Host(chains=["faults[latency=20],memory"], config=False)
    assert info.value.strerror == (
        "layer 'faults': latency must be a duration such as 20ms, 1.5s or 500us (0 for none), "
        "got '20'"
    )
    with pytest.raises(ChainSpecError) as info:
        wspframe.Host(chains=["faults[bandwith=1MB/s],memory"], config=False)
    assert "unknown option(s) bandwith" in (info.value.strerror or "")


def test_options_round_trip_through_their_text() -> None:
    text = {
        "latency": "20ms",
        "jitter": "5ms",
        "bandwidth": "1MB/s",
        "slice": "100",
        "slice_variation": "20",
        "slice_delay": "1ms",
        "limit": "1000",
        "netdown": "1s..2s",
        "drop": "0.1",
        "fail": "recv:WSAECONNRESET:0.25",
        "direction": "both",
        "seed": "3",
    }
    toxics = parse_options(text)
    assert parse_options(toxics.to_options()) == toxics
    assert Toxics() == parse_options({})
    assert str(Toxics()) == "(nothing)"


def test_set_validates_and_none_removes() -> None:
    layer = FaultsLayer({"latency": "5ms", "seed": "1"})
    layer.set(latency=None, drop="10%")
    assert layer.toxics.latency == 0
    assert layer.toxics.drop == pytest.approx(0.1)
    with pytest.raises(ValueError, match="drop must be a probability"):
        layer.set(drop=3)
    assert layer.toxics.drop == pytest.approx(0.1)  # unchanged by the failed set()
    layer.clear()
    assert layer.toxics == Toxics(seed=1)
    assert layer.seed == 1

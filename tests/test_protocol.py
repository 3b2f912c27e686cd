from __future__ import annotations

import uuid

import pytest

from wspframe import PFL, XP1, ProtocolInfo


def make(**kw: object) -> ProtocolInfo:
    base: dict[str, object] = {
        "name": "x [TCP]",
        "address_family": 2,
        "socket_type": 1,
        "protocol": 6,
    }
    base.update(kw)
    return ProtocolInfo(**base)  # type: ignore[arg-type]


def test_kinds_follow_the_chain_length() -> None:
    assert make(chain=()).is_layered
    assert make(chain=(1001,)).is_base
    assert make(chain=(1002, 1001)).is_chain
    assert make(chain=(1002, 1001)).entry_type == "Layered Chain Entry"
    assert make(chain=(1001,)).entry_type == "Base Service Provider"
    assert make().entry_type == "Layered Service Provider"


def test_flags_become_enums_and_are_readable() -> None:
    info = make(service_flags=0x20066, provider_flags=0x4)
    assert info.service_flags == XP1.IFS_HANDLES | XP1(0x66)
    assert info.ifs and info.is_hidden
    assert isinstance(info.provider_flags, PFL)
    assert "service_flags=0x20066" in repr(info)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "name must be a non-empty str"),
        ({"name": "n" * 256}, "at most 255"),
        ({"chain": tuple(range(1001, 1009))}, "at most 7"),
        ({"chain": (1001, 1001)}, "must not repeat"),
        ({"protocol": "6"}, "protocol must be an int"),
        ({"min_sockaddr": 30, "max_sockaddr": 16}, "min_sockaddr must be <= max_sockaddr"),
        ({"protocol_max_offset": -1}, "protocol_max_offset must be >= 0"),
        ({"provider_id": "not-a-uuid"}, "provider_id must be a uuid.UUID"),
    ],
)
def test_invalid_values_are_refused_with_the_value_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make(**changes)


def test_frozen_and_replace_revalidates() -> None:
    info = make()
    with pytest.raises(AttributeError):
        info.name = "y"  # type: ignore[misc]
    with pytest.raises(ValueError, match="at most 255"):
        info.replace(name="z" * 300)
    assert info.replace(protocol=17).protocol == 17


def test_protocol_ranges() -> None:
    info = make(protocol=100, protocol_max_offset=5)
    assert info.matches_protocol(100) and info.matches_protocol(105)
    assert not info.matches_protocol(99) and not info.matches_protocol(106)


def test_to_dict_is_json_ready() -> None:
    import json

    pid = uuid.uuid4()
    data = make(provider_id=pid, chain=(1001,), catalog_entry_id=1001).to_dict()
    assert json.loads(json.dumps(data))["provider_id"] == str(pid)
    assert data["chain_len"] == 1

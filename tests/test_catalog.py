from __future__ import annotations

import threading
import uuid

import pytest

from wspframe import PFL, XP1, Catalog, ProtocolInfo, WSAError, WSAErrorCode


def tmpl(name: str, af: int = 2, type_: int = 1, proto: int = 6, **kw: object) -> ProtocolInfo:
    return ProtocolInfo(name=name, address_family=af, socket_type=type_, protocol=proto, **kw)  # type: ignore[arg-type]


def code(exc: pytest.ExceptionInfo[WSAError]) -> int:
    return exc.value.wsa_code


@pytest.fixture
def cat() -> Catalog:
    c = Catalog()
    c.install(uuid.UUID(int=1), [tmpl("base [TCP]"), tmpl("base [UDP]", 2, 2, 17)])
    c.install(uuid.UUID(int=2), [tmpl("other [TCP6]", 10, 1, 6)])
    return c


def test_ids_start_at_1001_and_are_deterministic(cat: Catalog) -> None:
    assert cat.ids() == [1001, 1002, 1003]
    again = Catalog()
    again.install(uuid.UUID(int=1), [tmpl("base [TCP]"), tmpl("base [UDP]", 2, 2, 17)])
    again.install(uuid.UUID(int=2), [tmpl("other [TCP6]", 10, 1, 6)])
    assert [e.to_dict() for e in again] == [e.to_dict() for e in cat]
    assert cat[1001].chain == (1001,)


def test_second_install_under_the_same_provider_id_fails(cat: Catalog) -> None:
    with pytest.raises(WSAError) as exc:
        cat.install(uuid.UUID(int=1), [tmpl("again [TCP]")])
    assert code(exc) == WSAErrorCode.WSANO_RECOVERY
    assert len(cat) == 3


def test_layer_and_chain_install(cat: Catalog) -> None:
    layer = cat.install_layer("lsp", uuid.UUID(int=10))
    assert layer.is_layered and layer.is_hidden
    chains = cat.install_chain([layer], [1001, 1002], uuid.UUID(int=11))
    assert [c.name for c in chains] == ["lsp over [base [TCP]]", "lsp over [base [UDP]]"]
    assert [c.chain for c in chains] == [(1004, 1001), (1004, 1002)]
    # Placed ahead of what they layer.
    assert cat.ids()[:2] == [1005, 1006]
    assert cat.check() == []
    # Chains copy the base entry; a non-IFS layer clears XP1_IFS_HANDLES.
    cat2 = Catalog()
    cat2.install(uuid.UUID(int=1), [tmpl("b", service_flags=0x20066)])
    lay = cat2.install_layer("l", uuid.UUID(int=2))
    (entry,) = cat2.install_chain([lay], [1001], uuid.UUID(int=3), ifs=False)
    assert entry.service_flags == XP1(0x66)


def test_chain_longer_than_seven_is_refused(cat: Catalog) -> None:
    layers = [cat.install_layer(f"l{i}", uuid.UUID(int=100 + i)) for i in range(7)]
    with pytest.raises(WSAError) as exc:
        cat.install_chain(layers, [1001], uuid.UUID(int=200))
    assert code(exc) == WSAErrorCode.WSAEINVAL
    assert "at most 7" in str(exc.value)
    six = cat.install_chain(layers[:6], [1001], uuid.UUID(int=201))
    assert six[0].chain_len == 7


def test_deinstall_removes_the_chains_built_on_it(cat: Catalog) -> None:
    layer = cat.install_layer("lsp", uuid.UUID(int=10))
    cat.install_chain([layer], [1001, 1003], uuid.UUID(int=11))
    removed = cat.deinstall(uuid.UUID(int=1))
    assert {e.catalog_entry_id for e in removed} == {1001, 1002, 1005}
    # No chain names a missing id.
    assert all(cid in cat for e in cat for cid in e.chain)
    assert cat.check() == []
    removed = cat.deinstall(uuid.UUID(int=10))
    assert {e.catalog_entry_id for e in removed} == {1004, 1006}
    with pytest.raises(WSAError) as exc:
        cat.deinstall(uuid.UUID(int=10))
    assert code(exc) == WSAErrorCode.WSAEINVAL


@pytest.mark.parametrize(
    "order",
    [[1001, 1002], [1001, 1002, 1003, 1003], [1001, 1002, 1004], [3, 2, 1], []],
)
def test_write_order_needs_every_id_exactly_once(cat: Catalog, order: list[int]) -> None:
    before = cat.ids()
    with pytest.raises(WSAError) as exc:
        cat.write_order(order)
    assert code(exc) == WSAErrorCode.WSAEINVAL
    assert cat.ids() == before


def test_write_order_drives_enumeration_and_selection(cat: Catalog) -> None:
    cat.write_order([1003, 1002, 1001])
    assert [e.catalog_entry_id for e in cat.enum_protocols()] == [1003, 1002, 1001]
    assert next(cat.candidates(0, 0, 0)).catalog_entry_id == 1003


def test_enum_protocols_hides_layered_and_hidden_and_filters_ranges(cat: Catalog) -> None:
    layer = cat.install_layer("lsp", uuid.UUID(int=10))
    cat.install(uuid.UUID(int=3), [tmpl("hidden [x]", provider_flags=PFL.HIDDEN, chain=(9,))])
    cat.install(uuid.UUID(int=4), [tmpl("range [x]", 2, 3, 100, protocol_max_offset=5)])
    shown = [e.name for e in cat.enum_protocols()]
    assert "lsp" not in shown and "hidden [x]" not in shown
    assert {e.name for e in cat.enum_all()} >= {"lsp", "hidden [x]", layer.name}
    assert [e.name for e in cat.enum_protocols([103])] == ["range [x]"]
    assert [e.name for e in cat.enum_protocols([17])] == ["base [UDP]"]


@pytest.mark.parametrize(
    ("triplet", "expected"),
    [
        ((12345, 1, 6), WSAErrorCode.WSAEAFNOSUPPORT),
        ((10, 2, 17), WSAErrorCode.WSAESOCKTNOSUPPORT),
        ((10, 1, 99), WSAErrorCode.WSAEPROTONOSUPPORT),
        ((10, 2, 6), WSAErrorCode.WSAEPROTOTYPE),
    ],
)
def test_no_match_reports_the_mismatch_of_the_last_entry_examined(
    cat: Catalog, triplet: tuple[int, int, int], expected: WSAErrorCode
) -> None:
    with pytest.raises(WSAError) as exc:
        list(cat.candidates(*triplet))
    assert code(exc) == expected


def test_wildcards_and_empty_catalog(cat: Catalog) -> None:
    assert next(cat.candidates(0, 0, 0)).catalog_entry_id == 1001
    it = cat.candidates(0, 2, 0)
    assert next(it).name == "base [UDP]"
    cat.reset()
    with pytest.raises(WSAError) as exc:
        next(cat.candidates(2, 1, 6))
    assert code(exc) == WSAErrorCode.WSAEINVAL


def test_protocol_zero_picks_the_marked_entry() -> None:
    c = Catalog()
    c.install(
        uuid.UUID(int=1),
        [tmpl("a", 2, 3, 50), tmpl("b", 2, 3, 51, provider_flags=PFL.MATCHES_PROTOCOL_ZERO)],
    )
    assert next(c.candidates(2, 3, 0)).name == "b"
    assert next(c.candidates(2, 3, 50)).name == "a"


def test_check_reports_corruption() -> None:
    c = Catalog()
    c.restore(
        [
            tmpl("base", catalog_entry_id=1001, chain=(1001,)),
            tmpl("dangling", catalog_entry_id=1002, chain=(1099, 1001)),
            tmpl("orphan", catalog_entry_id=1003, provider_flags=PFL.HIDDEN),
            tmpl("late", catalog_entry_id=1005, chain=(1004, 1001)),
            tmpl("lsp", catalog_entry_id=1004, provider_flags=PFL.HIDDEN),
            tmpl("wrongbase", catalog_entry_id=1006, chain=(1007,)),
            tmpl("dup", catalog_entry_id=1001, chain=(1001,)),
            tmpl("notbase", catalog_entry_id=1008, chain=(1004, 1003)),
        ]
    )
    problems = "\n".join(c.check())
    assert "1099, which is not installed" in problems
    assert "layered entry 1003 ('orphan') is used by no chain" in problems
    assert "comes after its base entry 1001" in problems
    assert "base entry 1006 ('wrongbase') has chain (1007,)" in problems
    assert "catalog id 1001 appears more than once" in problems
    assert "ends in 1003, which is not a base entry" in problems
    c.reset()
    assert c.check() == [] and len(c) == 0


def test_listeners_hear_every_change(cat: Catalog) -> None:
    seen: list[str] = []
    cat.add_listener(lambda action, entries: seen.append(action))
    layer = cat.install_layer("lsp", uuid.UUID(int=10))
    cat.install_chain([layer], [1001], uuid.UUID(int=11))
    cat.write_order(cat.ids()[::-1])
    cat.deinstall(uuid.UUID(int=11))
    cat.reset()
    assert seen == ["install", "install", "order", "deinstall", "reset"]


def test_concurrent_installers_never_share_an_id() -> None:
    c = Catalog()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                c.install(uuid.UUID(int=n * 1000 + i), [tmpl(f"p{n}-{i}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    ids = c.ids()
    assert len(ids) == len(set(ids)) == 100
    assert sorted(ids) == list(range(1001, 1101))
    assert c.check() == []

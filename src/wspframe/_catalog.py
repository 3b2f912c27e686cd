"""The catalog: protocol entries in a declared order (``WSCInstallProvider`` and friends).

Theory of operation
-------------------
Entries live in one ordered list; the order drives enumeration and the
selection walk of ``socket()``.  Catalog ids are handed out from 1001 in
install order, so the same installs in the same order give the same ids in
every process.  Every mutation takes the catalog's lock and leaves it
consistent: deinstalling a provider also removes the chains built on its
entries, so no chain ever names a missing id.  :meth:`Catalog.check` reports
what an inconsistent catalog (say, one restored from elsewhere) gets wrong.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence

from ._constants import MAX_PROTOCOL_CHAIN, PFL, WSAPROTOCOL_LEN, XP1
from ._errors import WSAErrorCode, raise_wsa
from ._protocol import ProtocolInfo

__all__ = ["FIRST_CATALOG_ID", "Catalog"]

#: The first catalog id handed out.
FIRST_CATALOG_ID = 1001


def _chain_name(top: str, below: str) -> str:
    name = f"{top} over [{below}]"
    if len(name) > WSAPROTOCOL_LEN:
        name = name[: WSAPROTOCOL_LEN - 1] + "…"
    return name


class Catalog:
    """An ordered catalog of :class:`ProtocolInfo` entries.

    ``for entry in catalog`` walks the entries in order; ``catalog[id]``
    returns the entry with that catalog id (``KeyError`` if none).
    """

    def __init__(self) -> None:
        self._entries: list[ProtocolInfo] = []
        self._by_id: dict[int, ProtocolInfo] = {}
        #: ``has_id(catalog_entry_id)``: ``catalog_entry_id in catalog``
        #: without a Python call (the index is never replaced, only updated).
        self.has_id: Callable[[object], bool] = self._by_id.__contains__
        self._next_id = FIRST_CATALOG_ID
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, list[ProtocolInfo]], None]] = []
        #: (af, type, protocol) -> what candidates() yields, then raises; kept
        #: until the catalog changes (the walk's flag arithmetic is slow).
        self._picks: dict[
            tuple[int, int, int], tuple[tuple[ProtocolInfo, ...], tuple[WSAErrorCode, str]]
        ] = {}

    # -- reading -------------------------------------------------------------
    def __iter__(self) -> Iterator[ProtocolInfo]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, catalog_entry_id: object) -> bool:
        return catalog_entry_id in self._by_id

    def __getitem__(self, catalog_entry_id: int) -> ProtocolInfo:
        return self._by_id[catalog_entry_id]

    def get(self, catalog_entry_id: int) -> ProtocolInfo | None:
        """The entry with ``catalog_entry_id``, or None."""
        return self._by_id.get(catalog_entry_id)

    def ids(self) -> list[int]:
        """Catalog ids in order."""
        return [e.catalog_entry_id for e in self._entries]

    def enum_all(self) -> list[ProtocolInfo]:
        """``WSCEnumProtocols``: every entry, hidden and layered ones included."""
        return list(self._entries)

    def enum_protocols(self, protocols: Sequence[int] | None = None) -> list[ProtocolInfo]:
        """``WSAEnumProtocols``: base and chain entries that are not hidden.

        With ``protocols``, only entries whose protocol range
        (``protocol .. protocol + protocol_max_offset``) holds one of them.
        """
        out = []
        for entry in self._entries:
            if entry.is_layered or entry.is_hidden:
                continue
            if protocols is not None and not any(entry.matches_protocol(p) for p in protocols):
                continue
            out.append(entry)
        return out

    def by_provider(self, provider_id: uuid.UUID) -> list[ProtocolInfo]:
        """The entries installed under ``provider_id``, in order."""
        return [e for e in self._entries if e.provider_id == provider_id]

    def chains_using(self, catalog_entry_id: int) -> list[ProtocolInfo]:
        """Chain entries whose chain names ``catalog_entry_id``."""
        return [e for e in self._entries if e.is_chain and catalog_entry_id in e.chain]

    # -- listeners -------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, list[ProtocolInfo]], None]) -> None:
        """Call ``listener(action, entries)`` after each change."""
        self._listeners.append(listener)

    def _changed(self, action: str, entries: list[ProtocolInfo]) -> None:
        self._picks.clear()
        for listener in list(self._listeners):
            listener(action, entries)

    # -- installing --------------------------------------------------------------
    def install(
        self, provider_id: uuid.UUID, entries: Sequence[ProtocolInfo]
    ) -> list[ProtocolInfo]:
        """``WSCInstallProvider``: add a provider's entries at the end.

        Base templates (chain empty or of length 1) become base entries whose
        chain is their own new id; templates with ``PFL_HIDDEN`` and an empty
        chain become layered entries; longer chains are validated.  A second
        install under the same provider id fails with WSANO_RECOVERY.
        """
        if not isinstance(provider_id, uuid.UUID):
            raise_wsa(WSAErrorCode.WSAEINVAL, f"provider id must be a UUID, got {provider_id!r}")
        if not entries:
            raise_wsa(WSAErrorCode.WSAEINVAL, "install needs at least one protocol entry")
        with self._lock:
            if any(e.provider_id == provider_id for e in self._entries):
                raise_wsa(
                    WSAErrorCode.WSANO_RECOVERY,
                    f"provider id {provider_id} is already installed",
                )
            installed: list[ProtocolInfo] = []
            for template in entries:
                cid = self._next_id + len(installed)
                if template.chain_len > 1:
                    self._validate_chain(template.chain)
                    chain = template.chain
                elif template.chain_len == 0 and template.is_hidden and template.chain == ():
                    chain = ()
                else:
                    chain = (cid,)
                installed.append(
                    template.replace(provider_id=provider_id, catalog_entry_id=cid, chain=chain)
                )
            self._next_id += len(installed)
            self._entries.extend(installed)
            self._by_id.update((e.catalog_entry_id, e) for e in installed)
        self._changed("install", installed)
        return installed

    def install_layer(self, name: str, provider_id: uuid.UUID, *, version: int = 2) -> ProtocolInfo:
        """Install the hidden layered (dummy) entry of a layered provider."""
        template = ProtocolInfo(
            name=name,
            address_family=0,
            socket_type=0,
            protocol=0,
            provider_flags=PFL.HIDDEN,
            version=version,
            max_sockaddr=0,
            min_sockaddr=0,
        )
        return self.install(provider_id, [template])[0]

    def install_chain(
        self,
        layers: Sequence[ProtocolInfo],
        base_ids: Sequence[int],
        provider_id: uuid.UUID,
        *,
        ifs: bool = True,
    ) -> list[ProtocolInfo]:
        """Install one chain entry per base entry, layering ``layers`` (top first).

        Each entry is named ``"top over [next over [... base]]"``, copies its
        base entry's properties, and is placed ahead of the first base entry it
        covers.  ``ifs=False`` clears ``XP1_IFS_HANDLES`` (a non-IFS layer in the
        chain).  A chain longer than ``MAX_PROTOCOL_CHAIN`` is refused with
        WSAEINVAL.
        """
        if not layers:
            raise_wsa(WSAErrorCode.WSAEINVAL, "a chain needs at least one layer")
        if not base_ids:
            raise_wsa(WSAErrorCode.WSAEINVAL, "a chain needs at least one base entry to cover")
        if len(layers) + 1 > MAX_PROTOCOL_CHAIN:
            raise_wsa(
                WSAErrorCode.WSAEINVAL,
                f"a chain of {len(layers)} layers over a base is {len(layers) + 1} long; "
                f"at most {MAX_PROTOCOL_CHAIN} is allowed",
            )
        with self._lock:
            templates = []
            for base_id in base_ids:
                base = self._by_id.get(base_id)
                if base is None or not base.is_base:
                    raise_wsa(WSAErrorCode.WSAEINVAL, f"{base_id!r} is not a base entry id")
                name = base.name
                for layer in reversed(layers):
                    name = _chain_name(layer.name, name)
                flags = base.service_flags if ifs else base.service_flags & ~XP1.IFS_HANDLES
                chain = (*(layer.catalog_entry_id for layer in layers), base.catalog_entry_id)
                templates.append(
                    base.replace(
                        name=name,
                        chain=chain,
                        service_flags=flags,
                        provider_flags=base.provider_flags & ~PFL.HIDDEN,
                    )
                )
            installed = self.install(provider_id, templates)
            # Move the new chain entries ahead of the first base entry they cover.
            rest = [e for e in self._entries if e.provider_id != provider_id]
            first = min(i for i, e in enumerate(rest) if e.catalog_entry_id in set(base_ids))
            self._entries = rest[:first] + installed + rest[first:]
            self._picks.clear()
        return installed

    def deinstall(self, provider_id: uuid.UUID) -> list[ProtocolInfo]:
        """``WSCDeinstallProvider``: remove every entry of ``provider_id``.

        Chains that used a removed entry are removed too, so no chain ever
        names a missing id; the list returned holds everything removed.
        Unknown provider id: WSAEINVAL.
        """
        with self._lock:
            doomed = {e.catalog_entry_id for e in self._entries if e.provider_id == provider_id}
            if not doomed:
                raise_wsa(WSAErrorCode.WSAEINVAL, f"provider id {provider_id} is not installed")
            removed = []
            kept = []
            for entry in self._entries:
                if entry.catalog_entry_id in doomed or (
                    entry.is_chain and doomed.intersection(entry.chain)
                ):
                    removed.append(entry)
                else:
                    kept.append(entry)
            self._entries = kept
            for entry in removed:
                del self._by_id[entry.catalog_entry_id]
        self._changed("deinstall", removed)
        return removed

    def write_order(self, ids: Sequence[int]) -> None:
        """``WSCWriteProviderOrder``: reorder; ``ids`` must name every entry once.

        Anything else (a missing, unknown or repeated id) is WSAEINVAL and
        changes nothing.
        """
        with self._lock:
            wanted = list(ids)
            current = set(self._by_id)
            if len(wanted) != len(current) or set(wanted) != current:
                missing = sorted(current - set(wanted))
                unknown = sorted(set(wanted) - current)
                repeated = sorted({i for i in wanted if wanted.count(i) > 1})
                raise_wsa(
                    WSAErrorCode.WSAEINVAL,
                    f"write_order needs each of the {len(current)} catalog ids exactly once; "
                    f"missing {missing}, unknown {unknown}, repeated {repeated}",
                )
            self._entries = [self._by_id[i] for i in wanted]
            entries = list(self._entries)
        self._changed("order", entries)

    def reset(self) -> None:
        """Remove every entry (ids keep counting up)."""
        with self._lock:
            removed = list(self._entries)
            self._entries.clear()
            self._by_id.clear()
        self._changed("reset", removed)

    def restore(self, entries: Sequence[ProtocolInfo]) -> None:
        """Load ``entries`` as they are, unchecked (as a registry would hold them).

        Use :meth:`check` to find what is wrong with them.
        """
        with self._lock:
            self._entries = list(entries)
            self._by_id.clear()
            self._by_id.update((e.catalog_entry_id, e) for e in entries)
            top = max((e.catalog_entry_id for e in entries), default=FIRST_CATALOG_ID - 1)
            self._next_id = max(self._next_id, top + 1)
        self._changed("restore", list(entries))

    # -- checking --------------------------------------------------------------
    def _validate_chain(self, chain: Sequence[int]) -> None:
        problem = self._chain_problem(chain)
        if problem:
            raise_wsa(WSAErrorCode.WSAEINVAL, problem)

    def _chain_problem(self, chain: Sequence[int]) -> str | None:
        if len(chain) > MAX_PROTOCOL_CHAIN:
            return f"chain {tuple(chain)} is longer than {MAX_PROTOCOL_CHAIN}"
        if len(set(chain)) != len(chain):
            return f"chain {tuple(chain)} repeats an id"
        for i, cid in enumerate(chain):
            entry = self._by_id.get(cid)
            if entry is None:
                return f"chain {tuple(chain)} names id {cid}, which is not installed"
            last = i == len(chain) - 1
            if last and not entry.is_base:
                return f"chain {tuple(chain)} ends in {cid}, which is not a base entry"
            if not last and not entry.is_layered:
                return (
                    f"chain {tuple(chain)} has {cid} above the base, which is not a layered entry"
                )
        return None

    def check(self) -> list[str]:
        """Problems with the catalog, one sentence each (empty when consistent).

        Finds dangling chain ids, chains with a wrong shape or length, duplicate
        ids, provider ids shared between kinds of entry, layered entries no
        chain uses (orphans), and chain entries placed after the base entry
        they layer (the layer would be silently bypassed).
        """
        problems = []
        seen: set[int] = set()
        position: dict[int, int] = {}
        kinds: dict[uuid.UUID, set[str]] = {}
        for index, entry in enumerate(self._entries):
            cid = entry.catalog_entry_id
            if cid in seen:
                problems.append(f"catalog id {cid} appears more than once")
            seen.add(cid)
            position.setdefault(cid, index)
            kinds.setdefault(entry.provider_id, set()).add(entry.entry_type)
        used_layers: set[int] = set()
        for entry in self._entries:
            if entry.is_base and entry.chain[0] != entry.catalog_entry_id:
                problems.append(
                    f"base entry {entry.catalog_entry_id} ({entry.name!r}) has chain "
                    f"{entry.chain}, not its own id"
                )
            if entry.is_chain:
                problem = self._chain_problem(entry.chain)
                if problem:
                    problems.append(f"entry {entry.catalog_entry_id} ({entry.name!r}): {problem}")
                    continue
                used_layers.update(entry.chain[:-1])
                base = entry.chain[-1]
                if position[entry.catalog_entry_id] > position[base]:
                    problems.append(
                        f"chain entry {entry.catalog_entry_id} ({entry.name!r}) comes after its "
                        f"base entry {base}: the layers would be bypassed"
                    )
        for entry in self._entries:
            if entry.is_layered and entry.catalog_entry_id not in used_layers:
                problems.append(
                    f"layered entry {entry.catalog_entry_id} ({entry.name!r}) is used by no chain"
                )
        for provider_id, kind in kinds.items():
            if len(kind) > 1:
                problems.append(
                    f"provider id {provider_id} is shared by {', '.join(sorted(kind))} entries"
                )
        return problems

    # -- selection (SPI rule A2) --------------------------------------------------
    def candidates(self, af: int, type_: int, protocol: int) -> Iterator[ProtocolInfo]:
        """Entries matching ``(af, type, protocol)`` in catalog order.

        Layered and hidden entries are skipped.  When nothing (more) matches,
        raises the mismatch of the last entry examined: WSAEAFNOSUPPORT,
        WSAESOCKTNOSUPPORT or WSAEPROTONOSUPPORT; an empty catalog is WSAEINVAL.
        The iterator is what lets ``socket()`` resume the walk when a provider
        declines with WSAEINPROGRESS.
        """
        matches, mismatch = self.selection(af, type_, protocol)
        yield from matches
        raise_wsa(*mismatch)

    def selection(
        self, af: int, type_: int, protocol: int
    ) -> tuple[tuple[ProtocolInfo, ...], tuple[WSAErrorCode, str]]:
        """What :meth:`candidates` yields, and the code and message it raises
        after (kept until the catalog changes)."""
        key = (af, type_, protocol)
        picked = self._picks.get(key)
        if picked is None:
            with self._lock:
                picked = self._picks[key] = self._walk(af, type_, protocol)
        return picked

    def _walk(
        self, af: int, type_: int, protocol: int
    ) -> tuple[tuple[ProtocolInfo, ...], tuple[WSAErrorCode, str]]:
        """The matches of :meth:`candidates`, in order, and the mismatch to raise after."""
        entries = [e for e in self._entries if not e.is_layered and not e.is_hidden]
        if not entries:
            return (), (WSAErrorCode.WSAEINVAL, "the catalog holds no selectable protocol entry")
        matches: list[ProtocolInfo] = []
        mismatch = (WSAErrorCode.WSAEINVAL, "no protocol entry")
        zero_pick = protocol == 0 and any(
            e.provider_flags & PFL.MATCHES_PROTOCOL_ZERO for e in entries
        )
        for entry in entries:
            if af != 0 and entry.address_family != af:
                mismatch = (
                    WSAErrorCode.WSAEAFNOSUPPORT,
                    f"no entry matches (af={af}, type={type_}, protocol={protocol}); the last "
                    f"entry examined, {entry.name!r}, has address family {entry.address_family}",
                )
                continue
            if type_ != 0 and entry.socket_type != type_:
                if protocol != 0 and entry.matches_protocol(protocol):
                    mismatch = (
                        WSAErrorCode.WSAEPROTOTYPE,
                        f"no entry matches (af={af}, type={type_}, protocol={protocol}); the last "
                        f"entry examined, {entry.name!r}, has protocol {protocol} with "
                        f"socket type {entry.socket_type}",
                    )
                else:
                    mismatch = (
                        WSAErrorCode.WSAESOCKTNOSUPPORT,
                        f"no entry matches (af={af}, type={type_}, protocol={protocol}); the last "
                        f"entry examined, {entry.name!r}, has socket type {entry.socket_type}",
                    )
                continue
            if protocol != 0 and not entry.matches_protocol(protocol):
                mismatch = (
                    WSAErrorCode.WSAEPROTONOSUPPORT,
                    f"no entry matches (af={af}, type={type_}, protocol={protocol}); the last "
                    f"entry examined, {entry.name!r}, has protocol {entry.protocol}",
                )
                continue
            # Protocol 0 picks, among a provider's entries for this family and
            # type, the one marked PFL_MATCHES_PROTOCOL_ZERO.
            if (
                zero_pick
                and not entry.provider_flags & PFL.MATCHES_PROTOCOL_ZERO
                and any(
                    other.provider_flags & PFL.MATCHES_PROTOCOL_ZERO
                    and other.provider_id == entry.provider_id
                    and other.address_family == entry.address_family
                    and other.socket_type == entry.socket_type
                    for other in entries
                )
            ):
                continue
            matches.append(entry)
        return tuple(matches), mismatch

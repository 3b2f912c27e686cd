"""The ``wspframe`` command: catalog, providers, chain, demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from ._errors import WSAError
from ._host import Host
from ._protocol import ProtocolInfo
from ._spec import ChainSpecError

__all__ = ["format_catalog", "main"]


def _provider_path(host: Host, entry: ProtocolInfo) -> str:
    for cls in host.discovery.providers.values():
        if entry.name == cls.name or entry.name.startswith((f"{cls.name} ", f"{cls.name}[")):
            return f"{cls.__module__}:{cls.__qualname__}"
    return "?"


def format_catalog(host: Host, entries: Sequence[ProtocolInfo]) -> str:
    """The catalog in the manner of ``netsh winsock show catalog``."""
    blocks = []
    for e in entries:
        chain = " : ".join(str(c) for c in e.chain) if e.chain else ""
        rows = [
            ("Entry Type", e.entry_type),
            ("Description", e.name),
            ("Provider ID", "{" + str(e.provider_id).upper() + "}"),
            ("Provider Path", _provider_path(host, e)),
            ("Catalog Entry ID", str(e.catalog_entry_id)),
            ("Version", str(e.version)),
            ("Address Family", str(e.address_family)),
            ("Max Address Length", str(e.max_sockaddr)),
            ("Min Address Length", str(e.min_sockaddr)),
            ("Socket Type", str(e.socket_type)),
            ("Protocol", str(e.protocol)),
            ("Service Flags", f"{int(e.service_flags):#x}"),
            ("Protocol Chain Length", str(e.chain_len)),
        ]
        lines = ["Winsock Catalog Provider Entry", "-" * 54]
        lines += [f"{k + ':':<36}{v}" for k, v in rows]
        if chain:
            lines.append(f"{'Protocol Chain:':<36}{chain}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _cmd_catalog(args: argparse.Namespace, out: TextIO) -> int:
    host = Host(chains=args.chain or None, config=not args.no_config)
    entries = host.enum_all()
    if args.json:
        json.dump([e.to_dict() for e in entries], out, indent=2)
        out.write("\n")
    else:
        out.write(format_catalog(host, entries))
    return 0


def _cmd_providers(args: argparse.Namespace, out: TextIO) -> int:
    host = Host(config=not args.no_config)
    d = host.discovery
    if args.json:
        data = {
            "plugins": [
                {
                    "name": p.name,
                    "distribution": p.distribution,
                    "version": p.version,
                    "providers": list(p.providers),
                }
                for p in d.plugins
            ],
            "providers": {
                name: {
                    "kind": "base" if name in d.base_names else "layer",
                    "distribution": cls.distribution,
                    "description": cls.description,
                }
                for name, cls in d.providers.items()
            },
            "failures": [
                {
                    "name": f.name,
                    "distribution": f.distribution,
                    "version": f.version,
                    "error": f.error,
                }
                for f in d.failures
            ],
        }
        json.dump(data, out, indent=2)
        out.write("\n")
        return 0
    out.write("Plugins:\n")
    for p in d.plugins:
        out.write(f"  {p.name:<14} {p.distribution} {p.version}: {', '.join(p.providers) or '-'}\n")
    out.write("Providers:\n")
    for name, cls in d.providers.items():
        kind = "base " if name in d.base_names else "layer"
        out.write(f"  {name:<14} {kind}  {cls.distribution or '?'}  {cls.description}\n")
    if d.failures:
        out.write("Load failures:\n")
        for f in d.failures:
            out.write(f"  {f}\n")
    return 0


def _cmd_chain(args: argparse.Namespace, out: TextIO) -> int:
    host = Host(config=not args.no_config)
    spec = host.resolve_chain(args.spec)
    entries = host.install_chain(spec)
    out.write(f"chain {spec}: valid\n")
    for depth, element in enumerate(spec.elements):
        cls = host.discovery.providers[element.name]
        kind = "base" if depth == len(spec.layers) else "layer"
        opts = f" options {dict(element.options)}" if element.options else ""
        out.write(f"  {depth}: {element.name} ({kind}, {cls.distribution or '?'}){opts}\n")
    out.write("entries:\n")
    for e in entries:
        out.write(
            f"  {e.catalog_entry_id}  {e.name}  flags={int(e.service_flags):#x}  chain={e.chain}\n"
        )
    return 0


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._constants import AF_INET, SOCK_STREAM

    spec = args.chain or f"observe,{args.base}"
    messages = [b"hello through the chain", b"winsock in python", b"bye"]
    with Host(chains=[spec], config=False) as host:
        chain = host.resolve_chain(spec)
        server = host.socket(AF_INET, SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        address = server.getsockname()
        out.write(f"chain: {chain}\n")
        info = server.protocol_info
        out.write(
            f"catalog entry used: {info.catalog_entry_id} {info.name!r} "
            f"(service flags {int(info.service_flags):#x}, chain {info.chain})\n"
        )
        out.write(f"server listening on {address[0]}:{address[1]}\n")
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                conn, _ = server.accept()
                with conn:
                    while data := conn.recv(4096):
                        conn.sendall(data)
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=serve, name="wspframe-demo-echo", daemon=True)
        thread.start()
        with host.socket(AF_INET, SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(address)
            for message in messages:
                client.sendall(message)
                got = b""
                while len(got) < len(message):
                    got += client.recv(4096)
                out.write(f"client sent {message!r}, echo returned {got!r}\n")
            client.shutdown(1)
            client.recv(1)
        thread.join(10)
        server.close()
        if errors:
            raise errors[0]
        out.write("\nwhat each layer saw:\n")
        for element in chain.layers:
            layer = host.provider(str(element))
            events = getattr(layer, "events", None)
            summary = getattr(layer, "summary", None)
            if callable(summary):
                out.write(f"  {element}:\n")
                for line in str(summary()).splitlines():
                    out.write(f"    {line}\n")
            elif events is not None:
                out.write(f"  {element}: {len(events)} operations\n")
                for ev in events:
                    out.write(f"    handle {ev.handle:<4} {ev.op:<9} {ev.detail}\n")
            else:
                out.write(f"  {element}: overrides nothing (skipped on every data operation)\n")
        out.write(
            f"  {chain.base}: base provider, {'IFS' if client.is_ifs else 'non-IFS'} handles\n"
        )
    return 0


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    from . import _bench

    return _bench.main(
        args.specs,
        quick=args.quick,
        rounds=args.rounds,
        as_json=args.json,
        only=args.only or (),
        out=out,
        progress=None if args.json or args.no_progress else sys.stderr,
    )


def _cmd_conformance(args: argparse.Namespace, out: TextIO) -> int:
    import pytest

    argv = ["--wsp-conformance", *(f"--wsp-chain={spec}" for spec in args.spec)]
    argv += [f"--wsp-provider={path}" for path in args.provider or ()]
    if args.seed is not None:
        argv.append(f"--wsp-seed={args.seed}")
    if args.k:
        argv += ["-k", args.k]
    argv += ["-p", "no:cacheprovider", "-v" if args.verbose else "-q"]
    return int(pytest.main(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wspframe", description="The Winsock SPI in Python: catalog, providers, chains."
    )
    parser.add_argument(
        "--no-config", action="store_true", help="ignore [tool.wspframe] in pyproject.toml"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("catalog", help="print the catalog like 'netsh winsock show catalog'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--chain", action="append", metavar="SPEC", help="install this chain first (repeatable)"
    )
    p.set_defaults(func=_cmd_catalog)
    p = sub.add_parser("providers", help="list discovered plugins, providers and load failures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_providers)
    p = sub.add_parser("chain", help="validate and describe a chain spec")
    p.add_argument("spec", help="e.g. observe,passthrough,tcpip")
    p.set_defaults(func=_cmd_chain)
    p = sub.add_parser(
        "demo", help="an echo conversation through a chain, and each layer's view of it"
    )
    p.add_argument("--base", default="memory", help="base provider (default: memory; or tcpip)")
    p.add_argument("--chain", metavar="SPEC", help="the whole chain (default: observe,BASE)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "bench",
        help="measure what chains cost against raw sockets, as ratios in one run",
        description="Measure what chains cost against raw sockets, as ratios taken in one "
        "run (interleaved A/B, several rounds, median with min-max). Without SPEC: every "
        "row of the performance targets. See docs/performance.md.",
    )
    p.add_argument(
        "specs", nargs="*", metavar="SPEC", help="chains to measure instead (e.g. trace,tcpip)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quick", action="store_true", help="short mode for CI (under 60 s)")
    p.add_argument("--rounds", type=int, metavar="N", help="rounds per row (default 8; quick 4)")
    p.add_argument(
        "--only", action="append", metavar="KEY", help="only rows whose key contains KEY"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser(
        "conformance", help="run the SPI conformance suite (pytest) against chain(s)"
    )
    p.add_argument("spec", nargs="+", help="chain spec(s), e.g. mylayer,tcpip")
    p.add_argument(
        "--provider",
        action="append",
        metavar="MODULE:CLASS",
        help="add a provider class by import path (repeatable)",
    )
    p.add_argument("--seed", type=int, help="seed for the randomised checks (replay a run)")
    p.add_argument("-k", metavar="EXPR", help="only the checks matching this pytest expression")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per check")
    p.set_defaults(func=_cmd_conformance)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    try:
        status: int = args.func(args, stream)
        stream.flush()
    except (ChainSpecError, WSAError) as exc:
        print(f"wspframe: error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `wspframe catalog | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Every ```python block in docs/*.md (and README.md) runs, so the docs cannot drift.

One test per block, with the id ``file:line`` of its opening fence.  The blocks
of one file share a namespace and run in file order, in a fresh temporary
working directory (so no ``pyproject.toml`` above the checkout interferes).
If a block is run on its own (``-k``, or pytest-xdist sending it to another
worker), the blocks before it in the same file run first in that process.
After the last block of a file, no host may be left started and no socket open.

Blocks meant only to be read use another fence language (``text``, ``toml``,
``console``, ``bash``, ``json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wspframe

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"

#: The documentation set, as docs/index.md maps it.
EXPECTED_DOCS = (
    "index.md",
    "concepts.md",
    "catalog-and-chains.md",
    "socket-api.md",
    "providers.md",
    "writing-a-provider.md",
    "overlapped.md",
    "pytest.md",
    "performance.md",
    "trace.md",
    "faults.md",
    "write-your-own-layer.md",
    "demo.md",
)
#: Fence languages for blocks that are shown, not run.
READ_ONLY_LANGUAGES = frozenset({"text", "toml", "console", "bash", "json"})

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``, in order (CommonMark fences, no nesting)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        language = match["info"].strip().split(" ")[0] if match["info"].strip() else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            text = lines[i]
            # Remove the opening fence's indentation from the content (CommonMark).
            strip = min(indent, len(text) - len(text.lstrip(" ")))
            body.append(text[strip:])
            i += 1
        else:
            raise AssertionError(f"{path.name}:{start + 1}: unclosed code fence")
        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n"))
        i += 1
    return blocks


def doc_files() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), README]


def python_blocks() -> list[Block]:
    return [b for path in doc_files() for b in fenced_blocks(path) if b.language == "python"]


# -- running a file's blocks in order, in one namespace ---------------------------


@dataclasses.dataclass
class FileRun:
    """The shared state of one file's blocks in this process."""

    blocks: list[Block]
    workdir: Path
    namespace: dict[str, Any]
    done: int = 0  # blocks run so far, in order
    failed: str | None = None  # id of the block that failed, if any


_RUNS: dict[Path, FileRun] = {}


def _file_run(path: Path) -> FileRun:
    run = _RUNS.get(path)
    if run is None:
        workdir = Path(tempfile.mkdtemp(prefix=f"wspframe-docs-{path.stem}-"))
        blocks = [b for b in fenced_blocks(path) if b.language == "python"]
        namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
        run = _RUNS[path] = FileRun(blocks, workdir, namespace)
    return run


#: Seconds a block may take before it is interrupted (examples must be quick).
BLOCK_TIME_LIMIT = 60.0


class BlockTimedOut(BaseException):
    """Raised in a block that overran :data:`BLOCK_TIME_LIMIT`.

    A ``BaseException``, so that an example's own ``except TimeoutError`` or
    ``except Exception`` cannot swallow it.
    """


@contextlib.contextmanager
def _time_limit(block: Block) -> Iterator[None]:
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise BlockTimedOut(f"{block.id} ran longer than {BLOCK_TIME_LIMIT:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, BLOCK_TIME_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _execute(run: FileRun, block: Block) -> None:
    # Compiled under the Markdown file's own name and line numbers, so that
    # tracebacks point into (and quote) the documentation.
    padded = "\n" * block.line + block.source
    code = compile(padded, str(block.path), "exec", dont_inherit=True)
    try:
        with _time_limit(block):
            exec(code, run.namespace)
    except BaseException:
        run.failed = block.id
        raise


def _leftovers(namespace: dict[str, Any]) -> list[str]:
    """Hosts still started and sockets still open among the file's names."""
    problems = []
    for name, value in namespace.items():
        if isinstance(value, wspframe.Host) and value.started:
            problems.append(f"host {name!r} is still started")
        elif isinstance(value, wspframe.Socket) and not value.closed:
            problems.append(f"socket {name!r} is still open: {value!r}")
    return problems


BLOCKS = python_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _file_run(block.path)
    index = run.blocks.index(block)
    # The examples describe wspframe's defaults: no plugin filter from the environment.
    monkeypatch.delenv(wspframe.PLUGINS_ENV, raising=False)
    monkeypatch.chdir(run.workdir)
    if run.failed == block.id:
        pytest.fail(f"{block.id} failed when it ran earlier, before a later block of its file")
    if run.done > index:
        return  # already ran (and passed) before a later block of its file
    while run.done < index:
        earlier = run.blocks[run.done]
        if run.failed is not None:
            pytest.skip(f"an earlier block of this file failed: {run.failed}")
        try:
            _execute(run, earlier)
        except Exception as exc:
            pytest.fail(f"earlier block {earlier.id} failed: {exc!r}")
        run.done += 1
    if run.failed is not None:
        pytest.skip(f"an earlier block of this file failed: {run.failed}")
    _execute(run, block)
    run.done += 1
    if run.done == len(run.blocks):
        problems = _leftovers(run.namespace)
        assert not problems, f"{block.path.name} ends with resources left open: {problems}"


# -- the shape of the documentation ------------------------------------------------


def test_documentation_set_exists() -> None:
    missing = [name for name in EXPECTED_DOCS if not (DOCS / name).is_file()]
    assert not missing, f"missing docs: {missing}"


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in EXPECTED_DOCS[1:]:
        assert f"({name})" in index or f"({name}#" in index, f"index.md does not link {name}"


def _prose(path: Path) -> str:
    """The text of ``path`` without its code blocks (links there are not links)."""
    text = path.read_text(encoding="utf-8")
    for block in fenced_blocks(path):
        text = text.replace(block.source, "")
    return text


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub derives from the headings of ``path``."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(path), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(path)):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = path.parent / file_part if file_part else path
        missing_anchor = bool(anchor) and linked.suffix == ".md" and linked.exists()
        if not linked.exists() or (missing_anchor and anchor not in heading_anchors(linked)):
            broken.append(target)
    assert not broken, f"{path.name}: broken relative links or anchors {broken}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_fence_names_its_language(path: Path) -> None:
    allowed = READ_ONLY_LANGUAGES | {"python"}
    bad = [
        f"{b.id} ({b.language or 'no language'})"
        for b in fenced_blocks(path)
        if b.language not in allowed
    ]
    assert not bad, (
        f"fences must be 'python' (run by this test) or one of {sorted(READ_ONLY_LANGUAGES)}: {bad}"
    )


def test_readme_has_a_python_example() -> None:
    assert any(b.path == README for b in BLOCKS), "README.md lost its python example"


def test_fence_parser() -> None:
    text = (
        "intro\n```python\nx = 1\n```\n\n````text\n```python\nnot code\n```\n````\n"
        "  ```python\n  y = 2\n  ```\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.md"
        path.write_text(text, encoding="utf-8")
        blocks = fenced_blocks(path)
    assert [(b.line, b.language, b.source) for b in blocks] == [
        (2, "python", "x = 1\n"),
        (6, "text", "```python\nnot code\n```\n"),
        (11, "python", "y = 2\n"),
    ]

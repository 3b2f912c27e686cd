"""pip-installing the first-party plugins makes their layers appear; uninstalling
removes them.

The development environment has the plugins installed (editable), so these
checks run in a fresh virtual environment made for the session, without
system site-packages: wspframe is installed into it from a wheel built here
(and pluggy copied from this environment, so nothing is downloaded), the
plugins are pip-installed into a ``--target`` folder put on ``PYTHONPATH``
(as ``tests/test_discovery.py`` does), and also into the environment itself,
then uninstalled with pip.  Every check runs ``python -m wspframe`` in a
fresh process.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PLUGINS = Path(__file__).resolve().parents[2]
ROOT = PLUGINS.parent
DISTRIBUTIONS = ("wspframe-trace", "wspframe-faults")


def _pip(*args: str, python: str | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if python is not None:
        command += ["--python", python]
    proc = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of wspframe and of both plugins, built here without downloads."""
    assert importlib.util.find_spec("hatchling") is not None, "hatchling is needed to build"
    out = tmp_path_factory.mktemp("wheels")
    sources = [ROOT, *(PLUGINS / name for name in DISTRIBUTIONS)]
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), *map(str, sources))
    found = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    assert set(found) == {"wspframe", *DISTRIBUTIONS}, sorted(found)
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Path:
    """A virtual environment with wspframe (and pluggy) only."""
    path = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300
    )
    python = path / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for name in ("pluggy", "tomli"):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # tomli: only needed before Python 3.11
        package = Path(str(dist.locate_file(name)))
        shutil.copytree(package, site / name)
        for info in package.parent.glob(f"{name}-{dist.version}.dist-info"):
            shutil.copytree(info, site / info.name)
    _pip("install", "--no-deps", "--no-index", str(wheels["wspframe"]), python=str(python))
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --target`` of both plugins (from their source folders)."""
    site = tmp_path_factory.mktemp("target")
    _pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        *(str(PLUGINS / name) for name in DISTRIBUTIONS),
    )
    return site


def run(venv: Path, cwd: Path, *args: str, path: Path | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WSPFRAME_PLUGINS")}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "wspframe", "--no-config", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )
    return proc


def providers(venv: Path, cwd: Path, path: Path | None = None) -> dict[str, Any]:
    proc = run(venv, cwd, "providers", "--json", path=path)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_the_fresh_environment_has_no_plugin(venv: Path, tmp_path: Path) -> None:
    data = providers(venv, tmp_path)
    assert "trace" not in data["providers"]
    assert "faults" not in data["providers"]
    proc = run(venv, tmp_path, "catalog", "--chain", "trace,faults,tcpip")
    assert proc.returncode == 2
    assert "no provider named 'trace'" in proc.stderr


def test_target_install_makes_both_layers_appear(venv: Path, target: Path, tmp_path: Path) -> None:
    data = providers(venv, tmp_path, path=target)
    assert data["providers"]["trace"]["kind"] == "layer"
    assert data["providers"]["trace"]["distribution"] == "wspframe-trace"
    assert data["providers"]["faults"]["distribution"] == "wspframe-faults"
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["trace"]["version"] == "0.1.0"
    assert plugins["faults"]["providers"] == ["faults"]
    assert data["failures"] == []
    proc = run(venv, tmp_path, "providers", path=target)
    assert "  trace          layer  wspframe-trace  records every operation" in proc.stdout
    proc = run(venv, tmp_path, "catalog", "--json", "--chain", "trace,faults,tcpip", path=target)
    assert proc.returncode == 0, proc.stderr
    names = [e["name"] for e in json.loads(proc.stdout)]
    assert names[0] == "trace over [faults over [tcpip [TCP/IP]]]"
    assert {"trace", "faults"} <= set(names)  # the layers' hidden entries
    # And without the folder on the path, they are gone again.
    assert "trace" not in providers(venv, tmp_path)["providers"]


def test_demo_through_the_installed_layers(venv: Path, target: Path, tmp_path: Path) -> None:
    proc = run(venv, tmp_path, "demo", "--chain", "trace,faults[latency=1ms],memory", path=target)
    assert proc.returncode == 0, proc.stderr
    assert "  trace:\n    3 sockets" in proc.stdout
    assert "  faults[latency=1ms]:\n    toxics: latency=1ms" in proc.stdout


def test_pip_install_and_uninstall_in_the_environment(
    venv: Path, wheels: dict[str, Path], tmp_path: Path
) -> None:
    python = str(venv / "bin" / "python")
    _pip(
        "install",
        "--no-deps",
        "--no-index",
        *(str(wheels[d]) for d in DISTRIBUTIONS),
        python=python,
    )
    assert {"trace", "faults"} <= set(providers(venv, tmp_path)["providers"])
    _pip("uninstall", "-y", *DISTRIBUTIONS, python=python)
    assert not {"trace", "faults"} & set(providers(venv, tmp_path)["providers"])

"""A regular (non-editable) install of shardwatch, as a user gets it: the wheel is built from
a copy of this checkout (so the build never writes into the repository, and two builds cannot
share its `build/` folder) and installed into a fresh virtualenv that reuses the test
environment's dependencies (to stay fast). The `installed` fixture (conftest.py) builds it
once per test run, shared by the xdist workers; `run_installed` runs a command with a clean
environment (no SHARDWATCH_*, no PYTHONPATH)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is not built from: caches, virtualenvs, earlier builds and the tests.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    ".shardwatch", "tests", "benchmarks",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the test run's SHARDWATCH_* or PYTHON*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDWATCH_", "PYTHON"))}
    env.update(extra)
    return env


def run_installed(
    *args: str | Path, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def install_wheel(base: Path) -> Path:
    """Build the wheel into `base` from a copy of the checkout and install it (not editable)
    into `base/venv`; returns the virtualenv's `bin/`. Whatever `base` held is replaced."""
    started = time.monotonic()
    shutil.rmtree(base, ignore_errors=True)
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    wheels = base / "wheels"
    built = run_installed(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("shardwatch-*.whl")
    venv = base / "venv"
    made = run_installed(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    # Reuse this environment's dependencies: a plain path line in a .pth file adds the
    # folder but does not run its .pth files, so the repo's editable install stays out.
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_shardwatch_test_deps.pth").write_text("\n".join(deps) + "\n")
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    done = run_installed(*pip, "install", "--no-deps", "--no-index", "-q", wheel)
    assert done.returncode == 0, done.stderr
    print(f"\nwheel built and installed in {time.monotonic() - started:.1f} s")
    return venv / "bin"

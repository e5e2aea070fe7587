"""A benchmark's competitor in its own virtual environment, under ``~/.cache/serein-bench``.

Evidently and NannyML pin libraries serein has moved past (both need ``pandas<3``), so each runs
in a venv of its own, created with pip on first use and reused afterwards; the benchmark calls it
in a subprocess. ``SEREIN_BENCH_CACHE`` moves the cache.
"""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Sequence
from pathlib import Path

CACHE = Path(os.environ.get("SEREIN_BENCH_CACHE", Path.home() / ".cache" / "serein-bench"))


def python(name: str, requirements: Sequence[str]) -> Path:
    """The interpreter of venv ``CACHE/name``, creating it and installing ``requirements`` when
    missing or installed with other requirements (a ``.installed`` stamp, written last, lists them)."""
    folder = CACHE / name
    exe = folder / "bin" / "python"
    stamp = folder / ".installed"
    if not stamp.exists() or stamp.read_text().split() != list(requirements):
        print(f"creating {folder} with {' '.join(requirements)} (first run only)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", *requirements], check=True)
        stamp.write_text(" ".join(requirements) + "\n")
    return exe


def version(exe: Path, module: str) -> str:
    """``module.__version__`` as installed for interpreter ``exe``."""
    out = subprocess.run([str(exe), "-c", f"import {module}; print({module}.__version__)"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()

"""Build hook: compiles serein's C kernel (``src/serein/tree_kernel.c``) into
``src/serein/libtreekernel.so`` whenever serein is installed (``pip install .`` or ``-e .``).

The library is loaded with ctypes (``serein.tree_kernel``), so it needs no Python headers, only a
C compiler: ``$CC``, else the one Python was built with, else ``cc``. Without one, serein installs
anyway and scores tree tables with numpy (about 2.8x more CPU for batch scoring and monitoring);
the reason is printed. A wheel holding the library is tagged for this platform.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src/serein/tree_kernel.c")
LIBRARY = SOURCE.with_name("libtreekernel.so")
FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC"]  # no -march: the library runs on any CPU of the platform


class KernelBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the kernel before the wheel (or the editable wheel) is assembled."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source, library = Path(self.root) / SOURCE, Path(self.root) / LIBRARY
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        command = [*compiler, *FLAGS, "-o", str(library), str(source)]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            print(f"serein: the C kernel was not built ({detail.strip()[:500]}); tree ensembles will be "
                  "scored with numpy (install a C compiler and reinstall serein for the faster kernel)")
            library.unlink(missing_ok=True)  # never leave a library built from other source
            return
        if version != "editable":  # a wheel carrying a native library is for this platform only
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(library)] = f"serein/{LIBRARY.name}"

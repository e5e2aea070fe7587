"""Build hook: compiles serein's C kernel (``src/serein/tree_kernel.c``) into
``src/serein/libtreekernel.so`` whenever serein is installed (``pip install .`` or ``-e .``).

The library is loaded with ctypes (``serein.tree_kernel``), so it needs no Python headers, only a
C compiler: ``$CC``, else the one Python was built with, else ``cc``. Without one, serein installs
anyway and scores tree tables with numpy (about 2.8x more CPU for batch scoring and monitoring);
the reason is printed. A wheel holding the library is tagged for this platform.

The library records the SHA-256 of the source it was built from, and serein uses it only while the
``tree_kernel.c`` beside it is the same: after editing the C source, reinstall (``make install``)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported without hatchling, by serein's tests of the functions below
    BuildHookInterface = object

SOURCE = Path("src/serein/tree_kernel.c")
LIBRARY = SOURCE.with_name("libtreekernel.so")
FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC"]  # no -march: the library runs on any CPU of the platform


def source_hash(source: Path) -> str:
    """The SHA-256 of the C source (``serein.tree_kernel.source_hash``, which the loader compares)."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def compile_kernel(compiler: list[str], source: Path, library: Path) -> None:
    """``source`` compiled into ``library`` with ``serein_tree_kernel_source()``, the hash of the
    source, beside its functions: serein uses the library only while the source beside it is the
    same. The library is replaced in one step (a process holding the old one keeps it). Raises
    ``OSError`` or ``subprocess.SubprocessError`` when the compiler is missing or fails."""
    with tempfile.TemporaryDirectory() as scratch:
        stamp = Path(scratch, "source_hash.c")
        stamp.write_text(f'const char *serein_tree_kernel_source(void) {{ return "{source_hash(source)}"; }}\n')
        built = Path(scratch, library.name)
        subprocess.run([*compiler, *FLAGS, "-o", str(built), str(source), str(stamp)], check=True,
                       capture_output=True, text=True, timeout=300)
        partial = library.with_name(f".{library.name}.{os.getpid()}")
        try:
            shutil.copyfile(built, partial)
            os.replace(partial, library)
        finally:
            partial.unlink(missing_ok=True)


class KernelBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the kernel before the wheel (or the editable wheel) is assembled."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source, library = Path(self.root) / SOURCE, Path(self.root) / LIBRARY
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        try:
            compile_kernel(compiler, source, library)
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

"""Build hook: compiles serein's C kernels (``src/serein/NAME.c``, each into ``libNAME.so``, the
underscores dropped) whenever serein is installed: beside the source for ``pip install -e .``, into
the wheel for ``pip install .`` (built in a temporary folder: the source tree is not written to,
and may be read-only).

The libraries are loaded with ctypes (``serein.native``), so they need no Python headers, only a
C compiler: ``$CC`` when set, else the first on the PATH of the one Python was built with, ``cc``,
``gcc`` and ``clang``. Without one, serein installs anyway and does their work in Python (see
``KERNELS``); the reason is shown as a warning, which pip shows only with ``-v``
(``python -m serein.native`` tells afterwards). A wheel holding a library is tagged
``py3-none-<platform>``: any Python 3, this platform only.

Each library records the SHA-256 of the source it was built from, and serein uses it only while
the source beside it is the same: after editing a C source, reinstall (``make install``)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported without hatchling, by serein's tests of the functions below
    BuildHookInterface = object  # type: ignore[misc,assignment]

KERNELS = {  # each C source, and what serein does without its library
    Path("src/serein/tree_kernel.c"): "scores tree ensembles with numpy, with about 2.8x more CPU for batch "
                                      "scoring and monitoring",
    Path("src/serein/json_rows.c"): "reads predict bodies with orjson, with about 1.5x more CPU for a "
                                    "100-row request, and ships its log with 2x more CPU for the conversion",
    Path("src/serein/column_stats.c"): "judges numeric drift with numpy, with about 5x more CPU per numeric "
                                       "feature when monitoring",
}
FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC"]  # no -march: the library runs on any CPU of the platform


def _native() -> ModuleType:
    """``serein.native`` loaded from its file (standard library only): the build environment has
    no serein to import, and the libraries must be named and stamped as its loader expects."""
    spec = importlib.util.spec_from_file_location("_serein_native", Path(__file__).parent / "src/serein/native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NATIVE = _native()
library_path, source_hash = NATIVE.library_path, NATIVE.source_hash


def compile_kernel(compiler: list[str], source: Path, library: Path) -> None:
    """``source`` compiled into ``library`` with ``serein_NAME_source()`` (``NAME.c``), the hash of
    the source, beside its functions: serein uses the library only while the source beside it is the
    same. The library is replaced in one step (a process holding the old one keeps it). Raises
    ``OSError`` or ``subprocess.SubprocessError`` when the compiler is missing or fails."""
    with tempfile.TemporaryDirectory() as scratch:
        stamp = Path(scratch, "source_hash.c")
        stamp.write_text(f'const char *serein_{source.stem}_source(void) {{ return "{source_hash(source)}"; }}\n')
        built = Path(scratch, library.name)
        subprocess.run([*compiler, *FLAGS, "-o", str(built), str(source), str(stamp)], check=True,
                       capture_output=True, text=True, timeout=300)
        partial = library.with_name(f".{library.name}.{os.getpid()}")
        try:
            shutil.copy(built, partial)
            os.replace(partial, library)
        finally:
            partial.unlink(missing_ok=True)


def compiler() -> list[str] | None:
    """The C compiler to use: ``$CC`` when set (and only it), else the first found on the PATH of
    the one Python was built with (``sysconfig``'s CC, which may not be installed here), ``cc``,
    ``gcc`` and ``clang``; None when there is none."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    candidates = [shlex.split(sysconfig.get_config_var("CC") or "cc"), ["cc"], ["gcc"], ["clang"]]
    return next((command for command in candidates if command and shutil.which(command[0])), None)


def platform_tag() -> str:
    """The wheel tag for a library loaded with ctypes: any Python 3, this platform (the library
    does not use Python's C API, so one wheel serves every Python version serein supports)."""
    from packaging.tags import sys_tags

    # the plain platform tag (linux_x86_64, not manylinux: the wheel is not audited), as hatchling infers it
    platform = next(tag.platform for tag in sys_tags()
                    if "manylinux" not in tag.platform and "musllinux" not in tag.platform)
    if sys.platform == "darwin":
        from hatchling.builders.macos import process_macos_plat_tag

        platform = process_macos_plat_tag(platform, compat=False)
    return f"py3-none-{platform}"


class KernelBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the kernels before the wheel (or the editable wheel) is assembled: for an editable
    install into the source tree, where serein loads them; for a wheel into a temporary folder, so
    that building never writes into (or needs to write into) the source tree."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            self._scratch = tempfile.mkdtemp(prefix="serein-kernel-")
        command = compiler()
        for relative, without in KERNELS.items():
            source = Path(self.root) / relative
            library = library_path(source) if version == "editable" else Path(self._scratch) / library_path(source).name
            try:
                if command is None:
                    raise OSError("no C compiler: $CC is not set, and none of cc, gcc, clang is on the PATH")
                compile_kernel(command, source, library)
            except (OSError, subprocess.SubprocessError) as exc:
                detail = (getattr(exc, "stderr", None) or str(exc)).strip()[:500]
                self.app.display_warning(
                    f"serein: the C kernel {source.name} was not built ({detail}). serein works without it and "
                    f"{without}. For the kernel, install a C compiler (or set CC) and reinstall serein with pip's "
                    "--force-reinstall --no-cache-dir (a plain reinstall may reuse the wheel pip cached from this "
                    "build); `python -m serein.native` tells which are used")
                if version == "editable":
                    library.unlink(missing_ok=True)  # never leave a library built from other source
                continue
            if version != "editable":  # a wheel carrying a native library is for this platform only
                build_data["pure_python"] = False
                build_data["tag"] = platform_tag()
                build_data["force_include"][str(library)] = f"serein/{library.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

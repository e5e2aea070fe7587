"""How serein finds its compiled tree kernel (``serein.tree_kernel.library``) and how the build
hook (``hatch_build.py``) makes it: whatever lies at the library's path (nothing, an empty or
damaged file, a library of another ABI, of other source or missing a function), loading falls back
to numpy with the reason logged, never a crash. The install itself is not run here (no venvs): the
hook's steps are called directly."""

from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from serein import tree_kernel


def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _shared_library(tmp_path: Path, code: str, name: str = "libcrafted.so") -> Path:
    """``code`` compiled into a shared library (the test is skipped without a C compiler)."""
    compiler = _compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    source = tmp_path / f"{name}.c"
    source.write_text("#include <stdint.h>\n" + code)
    library = tmp_path / name
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True, timeout=60)
    return library


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """``library()`` run again from scratch (its answer is cached), and again after the test."""
    monkeypatch.delenv("SEREIN_TREE_KERNEL", raising=False)
    tree_kernel.library.cache_clear()
    yield monkeypatch
    tree_kernel.library.cache_clear()


def _falls_back(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    """``library()`` gives None and says why at debug level."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="serein.tree_kernel"):
        assert tree_kernel.library() is None
    assert reason in caplog.text, caplog.text


def test_turned_off_by_the_environment(fresh_loader: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fresh_loader.setenv("SEREIN_TREE_KERNEL", "0")
    _falls_back(caplog, "SEREIN_TREE_KERNEL=0")


def test_library_missing(fresh_loader: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh_loader.setattr(tree_kernel, "LIBRARY", tmp_path / "libtreekernel.so")
    _falls_back(caplog, "is not built")


@pytest.mark.parametrize("content", [b"", b"\x7fELF" + bytes(range(256)) * 4, b"not a library\n"],
                         ids=["empty", "damaged", "text"])
def test_library_not_loadable(fresh_loader: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                              content: bytes) -> None:
    library = tmp_path / "libtreekernel.so"
    library.write_bytes(content)
    fresh_loader.setattr(tree_kernel, "LIBRARY", library)
    _falls_back(caplog, "is not usable")


def test_library_of_another_abi(fresh_loader: pytest.MonkeyPatch, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    library = _shared_library(tmp_path, f"int64_t serein_tree_kernel_abi(void) {{ return {tree_kernel.ABI + 1}; }}\n")
    fresh_loader.setattr(tree_kernel, "LIBRARY", library)
    _falls_back(caplog, f"has ABI {tree_kernel.ABI + 1}")


@pytest.mark.parametrize("functions", [[], ["serein_tree_scores32"]], ids=["no-abi", "no-scores64"])
def test_library_missing_a_function(fresh_loader: pytest.MonkeyPatch, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture, functions: list[str]) -> None:
    """A library without the ABI function, or with the right ABI but a scoring function missing."""
    code = "".join(f"int64_t {name}(void) {{ return -1; }}\n" for name in functions)
    if functions:
        code += f"int64_t serein_tree_kernel_abi(void) {{ return {tree_kernel.ABI}; }}\n"
    else:
        code += "int64_t unrelated(void) { return 0; }\n"
    fresh_loader.setattr(tree_kernel, "LIBRARY", _shared_library(tmp_path, code))
    _falls_back(caplog, "is not usable")


def test_the_installed_library_loads_again_after_these_tests(fresh_loader: pytest.MonkeyPatch) -> None:
    """The cache cleared by the fixture leaves the real library as the other tests found it."""
    lib = tree_kernel.library()
    assert lib is None or isinstance(lib, ctypes.CDLL)

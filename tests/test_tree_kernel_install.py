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
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serein import column_stats, native, tree_kernel
from serein.serve import json_rows


KERNEL_MODULES = (tree_kernel, json_rows, column_stats)  # each module loading a kernel


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


@pytest.mark.parametrize(("content", "reason"), [(b"", "is not usable"), (b"not a library\n", "is not usable"),
                                               (b"\x7fELF" + bytes(range(256)) * 4, "is damaged")],
                         ids=["empty", "text", "damaged"])
def test_library_not_loadable(fresh_loader: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                              content: bytes, reason: str) -> None:
    library = tmp_path / "libtreekernel.so"
    library.write_bytes(content)
    fresh_loader.setattr(tree_kernel, "LIBRARY", library)
    _falls_back(caplog, reason)


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
        code += 'const char *serein_tree_kernel_source(void) { return "?"; }\n'
    else:
        code += "int64_t unrelated(void) { return 0; }\n"
    fresh_loader.setattr(tree_kernel, "LIBRARY", _shared_library(tmp_path, code))
    fresh_loader.setattr(tree_kernel, "SOURCE", tmp_path / "absent.c")  # no source to compare with
    _falls_back(caplog, "is not usable")


def test_the_installed_library_loads_again_after_these_tests(fresh_loader: pytest.MonkeyPatch) -> None:
    """The cache cleared by the fixture leaves the real library as the other tests found it."""
    lib = tree_kernel.library()
    assert lib is None or isinstance(lib, ctypes.CDLL)


def _hook():  # type: ignore[no-untyped-def]
    """``hatch_build.py`` as a module (it imports without hatchling, for these tests)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("hatch_build", Path(__file__).parents[1] / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def built(tmp_path: Path, fresh_loader: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The kernel built by the hook from a copy of its source, and the loader pointed at both."""
    compiler = _compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    source = tmp_path / "tree_kernel.c"
    shutil.copyfile(Path(tree_kernel.__file__).with_name("tree_kernel.c"), source)
    library = tmp_path / "libtreekernel.so"
    _hook().compile_kernel([compiler], source, library)
    fresh_loader.setattr(tree_kernel, "LIBRARY", library)
    fresh_loader.setattr(tree_kernel, "SOURCE", source)
    return source, library


def test_hook_and_loader_hash_and_name_alike(tmp_path: Path) -> None:
    source = tmp_path / "tree_kernel.c"
    source.write_bytes(b"int x;\r\n")
    hook = _hook()
    assert hook.source_hash(source) == native.source_hash(source)
    for kernel in hook.KERNELS:
        assert hook.library_path(kernel) == native.library_path(kernel)
    assert {native.library_path(module.SOURCE) for module in KERNEL_MODULES} == \
        {module.LIBRARY for module in KERNEL_MODULES}
    assert {kernel.name for kernel in hook.KERNELS} == {module.SOURCE.name for module in KERNEL_MODULES}


def test_library_built_from_the_source_beside_it_loads(built: tuple[Path, Path]) -> None:
    source, _ = built
    lib = tree_kernel.library()
    assert lib is not None
    assert lib.serein_tree_kernel_source() == native.source_hash(source).encode()


def test_library_built_from_other_source_is_not_used(built: tuple[Path, Path],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """An edit of tree_kernel.c in an editable install without a rebuild, the ABI number unchanged:
    the old library is not used."""
    source, _ = built
    source.write_text(source.read_text() + "/* edited */\n")
    _falls_back(caplog, "was built from another tree_kernel.c")


def test_library_without_its_source_beside_it_is_used(built: tuple[Path, Path]) -> None:
    """An install that leaves out the C source keeps the library (the ABI is still checked)."""
    source, _ = built
    source.unlink()
    assert tree_kernel.library() is not None


def test_library_that_does_not_record_its_source_is_not_used(fresh_loader: pytest.MonkeyPatch, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A library built before the hook recorded the source's hash, with the right ABI."""
    code = "".join(f"int64_t {name}(void) {{ return -1; }}\n" for name in ("serein_tree_scores32",
                                                                       "serein_tree_scores64"))
    code += f"int64_t serein_tree_kernel_abi(void) {{ return {tree_kernel.ABI}; }}\n"
    fresh_loader.setattr(tree_kernel, "LIBRARY", _shared_library(tmp_path, code))
    _falls_back(caplog, "does not say which source")


def test_status_says_which_path_scores(fresh_loader: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``python -m serein.native`` (the install's warning is hidden by pip without -v)."""
    fresh_loader.setattr(tree_kernel, "LIBRARY", tmp_path / "libtreekernel.so")
    assert "is not built" in tree_kernel._load()[1]
    fresh_loader.setenv("SEREIN_TREE_KERNEL", "0")
    assert "SEREIN_TREE_KERNEL=0" in tree_kernel._load()[1]


def test_compiler_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$CC when set, else the first found of Python's compiler, cc, gcc, clang; None without any."""
    hook = _hook()
    monkeypatch.setenv("CC", "/nonexistent/cc -O1")
    assert hook.compiler() == ["/nonexistent/cc", "-O1"]  # the user's choice, even when it fails
    monkeypatch.delenv("CC")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(hook.sysconfig, "get_config_var", lambda name: "x86_64-linux-gnu-gcc -pthread")
    assert hook.compiler() is None
    (bin_dir / "cc").write_text("#!/bin/sh\n")
    (bin_dir / "cc").chmod(0o755)
    assert hook.compiler() == ["cc"]  # Python's compiler is not installed here, cc is
    (bin_dir / "x86_64-linux-gnu-gcc").write_text("#!/bin/sh\n")
    (bin_dir / "x86_64-linux-gnu-gcc").chmod(0o755)
    assert hook.compiler() == ["x86_64-linux-gnu-gcc", "-pthread"]


class _App:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def display_warning(self, message: str = "", **kwargs: object) -> None:
        self.warnings.append(message)


def _run_hook(root: Path, version: str) -> tuple[dict, _App, object]:  # type: ignore[type-arg]
    """The hook's initialize on the project at ``root`` (without hatchling's builder)."""
    module = _hook()
    app = _App()
    hook_class = type("Hook", (module.KernelBuildHook,), {"root": str(root), "app": app})
    hook = hook_class.__new__(hook_class)
    build_data: dict = {"pure_python": True, "infer_tag": False, "force_include": {}}  # type: ignore[type-arg]
    hook.initialize(version, build_data)
    return build_data, app, hook


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "serein").mkdir(parents=True)
    for module in KERNEL_MODULES:
        shutil.copyfile(module.SOURCE, root / "src" / "serein" / module.SOURCE.name)
    return root


def test_hook_builds_a_wheel_without_writing_to_the_source_tree(tmp_path: Path) -> None:
    """``pip install .`` from a read-only clone: the library is built elsewhere and carried by the wheel,
    tagged for any Python 3 on this platform; the temporary folder goes after the build."""
    if _compiler() is None:
        pytest.skip("no C compiler here")
    pytest.importorskip("packaging.tags")
    root = _project(tmp_path)
    stale = root / "src" / "serein" / "libtreekernel.so"
    stale.write_bytes(b"")  # an editable install's library: neither used nor removed
    before = sorted(root.rglob("*"))
    (root / "src" / "serein").chmod(0o555)  # (root may write there anyway: the listing checks it)
    try:
        build_data, app, hook = _run_hook(root, "standard")
    finally:
        (root / "src" / "serein").chmod(0o755)
    assert sorted(root.rglob("*")) == before
    assert not app.warnings
    included = build_data["force_include"]
    assert sorted(included.values()) == ["serein/libcolumnstats.so", "serein/libjsonrows.so", "serein/libtreekernel.so"]
    assert all(Path(built).stat().st_size > 0 for built in included)
    assert not build_data["pure_python"] and build_data["tag"].startswith("py3-none-")
    assert not build_data["tag"].endswith("-any")
    assert stale.read_bytes() == b""
    hook.finalize("standard", build_data, "")
    assert not any(Path(built).exists() for built in included)


def test_hook_without_a_compiler_warns_and_builds_a_pure_wheel(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "nonexistent-cc"))
    root = _project(tmp_path)
    for version in ("standard", "editable"):
        libraries = [root / "src" / "serein" / name for name in ("libtreekernel.so", "libjsonrows.so", "libcolumnstats.so")]
        for library in libraries:
            library.write_bytes(b"old")
        build_data, app, hook = _run_hook(root, version)
        assert build_data == {"pure_python": True, "infer_tag": False, "force_include": {}}
        trees, reader, stats = app.warnings
        assert all("nonexistent-cc" in warning and "--no-cache-dir" in warning for warning in (trees, reader, stats))
        assert "tree_kernel.c" in trees and "numpy" in trees and "json_rows.c" in reader and "orjson" in reader
        assert "column_stats.c" in stats and "numpy" in stats
        # an editable install's old libraries go (built from other source); a wheel build leaves the tree alone
        assert all(library.exists() == (version == "standard") for library in libraries)
        hook.finalize(version, build_data, "")


def test_hook_builds_an_editable_install_beside_the_source(tmp_path: Path, fresh_loader: pytest.MonkeyPatch) -> None:
    if _compiler() is None:
        pytest.skip("no C compiler here")
    root = _project(tmp_path)
    build_data, app, _ = _run_hook(root, "editable")
    assert not app.warnings and not build_data["force_include"] and build_data["pure_python"]
    fresh_loader.setattr(tree_kernel, "LIBRARY", root / "src" / "serein" / "libtreekernel.so")
    fresh_loader.setattr(tree_kernel, "SOURCE", root / "src" / "serein" / "tree_kernel.c")
    assert tree_kernel.library() is not None
    fresh_loader.setattr(json_rows, "LIBRARY", root / "src" / "serein" / "libjsonrows.so")
    fresh_loader.setattr(json_rows, "SOURCE", root / "src" / "serein" / "json_rows.c")
    assert json_rows._load()[0] is not None
    fresh_loader.setattr(column_stats, "LIBRARY", root / "src" / "serein" / "libcolumnstats.so")
    fresh_loader.setattr(column_stats, "SOURCE", root / "src" / "serein" / "column_stats.c")
    assert column_stats._load()[0] is not None



def test_truncated_library_is_refused_without_a_crash(built: tuple[Path, Path], tmp_path: Path) -> None:
    """A library cut short (an interrupted copy, a full disk): the dynamic loader would map its
    segments past the end of the file and the process die of SIGBUS; the headers are checked first.
    Loaded in a child process, so that a regression fails this test instead of killing pytest."""
    _, library = built
    whole = library.read_bytes()
    assert native.elf_damage(whole) is None
    assert all(native.elf_damage(whole[:size]) for size in range(4, len(whole)))
    cuts = tmp_path / "cuts"
    cuts.mkdir()
    for size in range(0, len(whole), max(1, len(whole) // 40)):
        (cuts / f"{size:06d}.so").write_bytes(whole[:size])
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from serein import tree_kernel\n"
        "tree_kernel.SOURCE = Path(sys.argv[1]) / 'absent.c'\n"
        "for path in sorted(Path(sys.argv[1]).glob('*.so')):\n"
        "    tree_kernel.LIBRARY = path\n"
        "    lib, why = tree_kernel._load()\n"
        "    assert lib is None, path\n"
        "print('refused all')\n")
    done = subprocess.run([sys.executable, "-c", script, str(cuts)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "refused all" in done.stdout, (done.returncode, done.stderr[-2000:])


def test_the_json_rows_reader_can_be_turned_off_and_the_status_names_both_kernels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEREIN_JSON_ROWS", "0")
    assert json_rows._load() == (None, "not used (SEREIN_JSON_ROWS=0): reading predict bodies and log records with "
                                      "orjson")
    monkeypatch.delenv("SEREIN_JSON_ROWS")
    status = subprocess.run([sys.executable, "-m", "serein.native"], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and status.stdout.startswith("tree kernel: ")
    assert "\nJSON rows reader: " in status.stdout

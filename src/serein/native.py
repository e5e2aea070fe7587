"""Loading serein's compiled kernels: each ``src/serein/NAME.c`` built into ``libNAME.so`` (the
underscores dropped) beside it by ``hatch_build.py`` when serein is installed, and called through
:mod:`ctypes`, which releases the GIL for the whole call.

A kernel is optional: where no compiler was found at install time, or the library is damaged or
stale, :func:`load` gives None with the reason, and its module does the work in Python instead.
A library is used only when it matches its module and the source beside it: its
``serein_NAME_abi()`` must be the module's ABI number (both bumped when the interface changes),
and ``serein_NAME_source()``, the SHA-256 of ``NAME.c`` that the build hook compiles into it, must
be the hash of the ``NAME.c`` installed beside it. So after an edit of the C source in an editable
install, the Python path is used until it is rebuilt (``make install``, or ``pip install -e .``)
rather than a library built from the old source.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INT64 = ctypes.c_int64
POINTER = ctypes.c_void_p


def library_path(source: Path) -> Path:
    """Where the build hook puts the library of ``source``.

    >>> library_path(Path("src/serein/json_rows.c")).name
    'libjsonrows.so'
    """
    return source.with_name(f"lib{source.stem.replace('_', '')}.so")


def load(library: Path, source: Path, abi: int, *, switch: str, fallback: str,
         functions: Mapping[str, Sequence[Any]]) -> tuple[ctypes.CDLL | None, str]:
    """The library built from ``source`` (or None) and what was found. ``switch``: the
    environment variable that turns it off (``=0``); ``fallback``: what is done without it
    (``"scoring with numpy"``); ``functions``: the argument types of each function it must have
    (each returns an int64)."""
    if os.environ.get(switch, "1") == "0":
        return None, f"not used ({switch}=0): {fallback}"
    if not library.is_file():
        return None, f"{library} is not built (no C compiler when serein was installed): {fallback}"
    stem = source.stem
    try:
        damage = elf_damage(library.read_bytes())
        if damage:
            return None, f"{library} is damaged ({damage}): {fallback} until serein is reinstalled"
        lib = ctypes.CDLL(str(library))
        getattr(lib, f"serein_{stem}_abi").restype = INT64
        built_abi = getattr(lib, f"serein_{stem}_abi")()
        if built_abi != abi:
            return None, (f"{library} has ABI {built_abi}, this module needs {abi} (built from other source): "
                          f"{fallback} until serein is reinstalled")
        built_from = getattr(lib, f"serein_{stem}_source", None)  # hatch_build.py adds it
        if built_from is None:
            return None, (f"{library} does not say which source it was built from (built before serein recorded "
                          f"it): {fallback} until serein is reinstalled")
        built_from.restype = ctypes.c_char_p
        if source.is_file() and built_from() != source_hash(source).encode():
            return None, (f"{library} was built from another {source.name} (edited since serein was installed): "
                          f"{fallback} until serein is reinstalled (make install, or pip install -e .)")
        for name, argtypes in functions.items():
            function = getattr(lib, name)
            function.restype = INT64
            function.argtypes = list(argtypes)
    except (OSError, AttributeError) as exc:  # not a library for this machine (damaged, empty), or a symbol missing
        return None, f"{library} is not usable ({exc}): {fallback}"
    return lib, f"{library} is used"


def elf_damage(data: bytes) -> str | None:
    """What makes this ELF library shorter than its headers say (None when nothing does, or when
    it is not ELF: the loader judges other formats). The dynamic loader maps a truncated library's
    segments past the end of the file and the process dies of SIGBUS on the first read, where an
    empty or non-library file only gives ``OSError``; reading the headers first costs microseconds.

    >>> elf_damage(b"\\x7fELF\\x02\\x01" + bytes(58))
    >>> elf_damage(b"\\x7fELF\\x02\\x01")
    'its header is cut off'
    """
    if not data.startswith(b"\x7fELF"):
        return None
    wide, order = data[4:5] == b"\x02", "<" if data[5:6] == b"\x01" else ">"
    layout = (f"{order}QQ6xHHHH", 0x20, 64) if wide else (f"{order}II6xHHHH", 0x1C, 52)
    if len(data) < layout[2]:
        return "its header is cut off"
    phoff, shoff, phentsize, phnum, shentsize, shnum = struct.unpack_from(layout[0], data, layout[1])
    if phoff + phnum * phentsize > len(data) or shoff + shnum * shentsize > len(data):
        return f"{len(data)} bytes, shorter than its header tables"
    segment = f"{order}I4xQ16xQ" if wide else f"{order}II8xI"  # p_type, p_offset, p_filesz
    if phnum and phentsize < struct.calcsize(segment):
        return "its program headers are too short"
    for k in range(phnum):
        kind, offset, size = struct.unpack_from(segment, data, phoff + k * phentsize)
        if kind == 1 and offset + size > len(data):  # PT_LOAD
            return f"{len(data)} bytes, shorter than its segments ({offset + size})"
    return None


def source_hash(source: Path) -> str:
    """The SHA-256 of a C source, as ``hatch_build.py`` records it in the library it builds."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


if __name__ == "__main__":  # python -m serein.native: which kernels are used here, and why
    from serein import column_stats, tree_kernel
    from serein.serve import json_rows

    print(f"tree kernel: {tree_kernel._load()[1]}")
    print(f"JSON rows reader: {json_rows._load()[1]}")
    print(f"column statistics: {column_stats._load()[1]}")

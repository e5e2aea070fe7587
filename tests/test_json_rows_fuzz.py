"""The compiled body reader (``src/serein/json_rows.c``) reads untrusted request bodies: fuzzed
under AddressSanitizer and UndefinedBehaviorSanitizer (``tests/json_rows_fuzz.c``), it must never
read outside a body, whatever the body, and answer only in range. Skipped where no C compiler
with the sanitizers is found."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("json_rows_fuzz.c")


def test_the_reader_stays_inside_every_body(tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler here")
    program = tmp_path / "json_rows_fuzz"
    built = subprocess.run([compiler, "-O1", "-g", "-std=c99", "-fsanitize=address,undefined",
                            "-fno-sanitize-recover=all", "-o", str(program), str(HARNESS), "-lm"],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        pytest.skip(f"the sanitizers are not available here: {built.stderr[-300:]}")
    for seed in ("1", "2"):
        run = subprocess.run([str(program), "300000", seed], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and run.stdout.strip() == "ok 300000", run.stderr[-3000:]

"""``serein serve`` refusing to start: one clear line and the documented exit code."""

from __future__ import annotations

import subprocess
import sys

from serein.serve.server import bind
from serein.workspace import Workspace


def serve(ws: Workspace, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serein", "serve", "-w", str(ws.root), "--port", str(port)],
                          check=False, capture_output=True, text=True, timeout=120)


def test_port_in_use_exits_1_with_one_line(workspace: Workspace) -> None:
    holder = bind("127.0.0.1", 0)
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = serve(workspace, port)
    finally:
        holder.close()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert lines[1].startswith("hint: pick another --port") and "Traceback" not in result.stderr


def test_no_registered_model_exits_2(workspace: Workspace) -> None:
    result = serve(workspace, 0)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: no registered model has a champion to serve"
    assert lines[1].startswith("hint: train one with") and "Traceback" not in result.stderr


def test_port_out_of_range_is_a_usage_error(workspace: Workspace) -> None:
    result = serve(workspace, 70000)
    assert result.returncode == 2 and "65535" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_serve_setting_is_named(workspace: Workspace) -> None:
    config = workspace.root / "serein.yaml"
    config.write_text(config.read_text().replace("  threads: 1 ", "  threads: many "))
    result = serve(workspace, 0)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: serve.threads must be an integer >= 1, got 'many'")

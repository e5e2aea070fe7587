from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serein.errors import NotFoundError, UsageError
from serein.workspace import Workspace, find_root


def test_init_creates_config_and_state(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "a", project="demo")
    assert (ws.root / "serein.yaml").is_file()
    assert (ws.root / ".serein").is_dir()
    assert ws.config["project"] == "demo"
    assert ws.store_uri == f"sqlite:///{ws.root}/.serein/serein.db"
    assert ws.data_root == str(ws.root / ".serein" / "data")


def test_init_keeps_existing_settings(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    (ws.root / "serein.yaml").write_text("project: kept\nserve:\n  port: 9001\n")
    again = Workspace.init(tmp_path)
    assert again.config["project"] == "kept"
    assert again.config["serve"]["port"] == 9001
    assert again.config["serve"]["host"] == "127.0.0.1"  # defaults fill the rest


def test_find_root_walks_upward(tmp_path: Path) -> None:
    Workspace.init(tmp_path)
    deep = tmp_path / "x" / "y"
    deep.mkdir(parents=True)
    assert find_root(deep) == tmp_path.resolve()
    with pytest.raises(NotFoundError):
        find_root(Path("/"))


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path)
    monkeypatch.setenv("SEREIN_SERVE__PORT", "9100")
    monkeypatch.setenv("SEREIN_STORE_URI", "postgresql+psycopg://127.0.0.1/test")
    ws = Workspace(tmp_path)
    assert ws.config["serve"]["port"] == 9100
    assert ws.store_uri == "postgresql+psycopg://127.0.0.1/test"


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "serein.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(UsageError, match="mapping"):
        Workspace(tmp_path)


def _serein(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serein", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_init_and_missing_workspace(tmp_path: Path) -> None:
    done = _serein("init", str(tmp_path / "w"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "w" / "serein.yaml").is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = _serein("data", "list", "--workspace", str(outside), cwd=outside)
    assert done.returncode == 2
    assert "not a serein workspace" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_does_not_import_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys, runpy; sys.argv=['serein','--help'];\n"
        "try:\n    runpy.run_module('serein', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "heavy=[m for m in ('mlflow','sklearn','onnxruntime','deltalake','pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr

"""The command line's entry point: a run registers only the module of the command it names
(``serein.cli.main.modules_for``), each module adds exactly the commands ``SUBCOMMANDS`` lists
for it, and help or a mistyped name still sees every command."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import typer

from serein.cli.main import SUBCOMMANDS, modules_for


def test_each_module_adds_the_commands_it_is_listed_for() -> None:
    for module, commands in SUBCOMMANDS.items():
        app = typer.Typer()
        importlib.import_module(f"serein.cli.{module}").register(app)
        added = [c.name or c.callback.__name__ for c in app.registered_commands]
        added += [g.name for g in app.registered_groups]
        assert sorted(added) == sorted(commands), module


def test_a_run_registers_the_module_of_the_command_it_names_or_all_of_them() -> None:
    assert modules_for(["monitor", "credit", "--current", "batch.parquet"]) == ("monitor",)
    assert modules_for(["alerts", "list"]) == ("monitor",)
    assert modules_for(["predict", "--help"]) == ("predict",)
    assert modules_for(["init", "."]) == ()
    for args in ([], ["--help"], ["moniter"], ["--workspace", "monitor"]):
        assert modules_for(args) == tuple(SUBCOMMANDS), args


def test_help_lists_every_command_and_a_mistyped_one_is_suggested() -> None:
    shown = subprocess.run([sys.executable, "-m", "serein", "--help"], capture_output=True, text=True,
                           timeout=60, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    for command in ("init", *(c for commands in SUBCOMMANDS.values() for c in commands)):
        assert f" {command} " in shown, command
    typo = subprocess.run([sys.executable, "-m", "serein", "moniter"], capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2 and "Did you mean 'monitor'?" in typo.stderr

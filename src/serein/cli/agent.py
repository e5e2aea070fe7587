"""``serein agent``: monitor every model on its new traffic (and retrain by policy) at intervals."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, fmt_time, open_workspace, print_json


def _line(record: dict[str, Any]) -> str:
    parts = [f"{fmt_time(record['ran_at'])} {record['model']}:"]
    mon = record.get("monitor") or {}
    if mon:
        parts.append(f"monitor {mon['status']}" + (f" ({mon['n_rows']} rows, {mon['alerts']} alerts, "
                                                    f"{mon['resolved']} resolved)" if "n_rows" in mon else ""))
    re = record.get("retrain")
    if re:
        parts.append(f"retrain on {'+'.join(re['triggers'])}: " + (
            f"skipped ({re['skipped']})" if "skipped" in re else
            f"v{re['new_version']} {'promoted' if re['promoted'] else 'not promoted: ' + re['reason']}"))
    if record.get("error"):
        parts.append(f"[bold red]failed:[/] {record['error']}")
    return " ".join(parts)


def agent(
    once: Annotated[bool, typer.Option("--once", help="One pass over every model now, then exit.")] = False,
    interval: Annotated[str | None, typer.Option(help="Monitor each model this often (e.g. 5m); default agent.interval.")] = None,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Monitor each registered model on its new traffic, and retrain it when its policy
    (models.<name>.retrain in serein.yaml) says so; runs until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from serein.agent import run
    from serein.monitor.window import parse_duration

    if interval is not None:
        parse_duration(interval, "--interval")
    ws = open_workspace(workspace)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    report = (lambda r: print_json(r)) if as_json else (lambda r: console.print(_line(r), highlight=False))
    if not once:
        console.print(f"serein agent on {ws.root} (SIGTERM or Ctrl-C stops it after the step under way)")
    records = run(ws, once=once, interval=interval, stop=stop, report=report)
    if once and not records and not as_json:
        console.print("no registered model with a champion to monitor")
    if once and any(r["error"] for r in records):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)

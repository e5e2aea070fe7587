"""Ending the prediction log's helper processes (the shipper and the syncer) the same way.

Both children read requests from their stdin and exit when it closes; a child that does not
exit within ``timeout`` seconds is killed.
"""

from __future__ import annotations

import subprocess


def end_child(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Close ``proc``'s stdin, wait for it to exit (killing it after ``timeout`` seconds), then
    close its stdout. ``None`` (no child) does nothing.

    >>> import sys
    >>> child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
    ...                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    >>> end_child(child); child.returncode
    0
    """
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()

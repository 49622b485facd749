"""Whether a process runs (torch-free, standard library only): the checks the background basis queue and the
report store make of the processes named in their lock files."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a number that now belongs to another user's process counts as running; 0 and
    negative numbers never do)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

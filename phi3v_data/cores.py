"""How many processes to start by default."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux), else all.

    ``os.cpu_count()`` counts the machine's cores, which overcounts in a container limited to a few.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

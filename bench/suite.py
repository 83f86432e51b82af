"""The shape every benchmark reports in, so ``python -m bench`` can print one table.

Each benchmark module that takes part in the suite has a function
``suite(database_url: str | None = None) -> list[Goal]``: bounded in time, it builds what it
needs (a throwaway instance, a child process), measures side by side, and returns one
:class:`Goal` per line of the table. A goal's ``met`` is ``None`` when the line is context
(an absolute figure with no goal of its own).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field


@dataclass
class Goal:
    """One line of the suite's table: what was measured, the figure, and whether it passes."""

    area: str  # live, inference, hotswap, train, import, export, queue
    name: str  # e.g. "dough prediction vs bare fragment"
    figure: str  # e.g. "0.92x (423 vs 459 req/s), p99 18.6 ms"
    target: str  # e.g. ">= 0.85x and p99 <= 25 ms"; "" when there is no goal
    met: bool | None  # None: context only
    data: dict = field(default_factory=dict)  # raw numbers, for the JSON record

    def as_dict(self) -> dict:
        """The goal as plain JSON-able data."""
        return asdict(self)


def verdict(goal: Goal) -> str:
    """``met``, ``NOT met`` or ``-`` (context), as the table prints it."""
    return {True: "met", False: "NOT met", None: "-"}[goal.met]


def suite_args(database_url: str | None = None, **fixed) -> argparse.Namespace:
    """A module's fixed suite settings, shaped like its parsed command line.

    The benchmarks' functions take the ``args`` their ``main`` parses; the suite hands them
    the same shape with settings chosen to fit its time budget.
    """
    return argparse.Namespace(database_url=database_url, **fixed)



def memory_kb(field: str) -> int:
    """This process's ``field`` from /proc/self/status, in kB (VmRSS, VmHWM); 0 if absent."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

"""Which run starts next: longest processing time first (LPT), among the runs that fit the free resources.

Graham's LPT list scheduling keeps the makespan within 4/3 of optimal on identical machines; with runs that need
several devices it is the usual greedy generalisation: whenever resources free up, start the longest waiting
run that fits. Durations are estimates (``sweep.planning.plan.estimated_seconds``); only their order matters here.

Pure bookkeeping, no Ray: the driver (``sweep.execute.orchestrate``) and the scheduling benchmark both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    cpus: float = 0.0
    gpus: float = 0.0

    def fits_in(self, other: "Resources") -> bool:
        return self.cpus <= other.cpus + 1e-9 and self.gpus <= other.gpus + 1e-9

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpus + other.cpus, self.gpus + other.gpus)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.cpus - other.cpus, self.gpus - other.gpus)


class LptQueue(Generic[T]):
    """Waiting runs, longest first; ``pop_fitting`` hands out the longest one that fits."""

    def __init__(self, items: list[T], duration: Callable[[T], float], demand: Callable[[T], Resources]) -> None:
        self._items = sorted(items, key=duration, reverse=True)
        self._demand = demand

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        """The waiting items, longest first."""
        return iter(list(self._items))

    def pop_fitting(self, free: Resources, eligible: Callable[[T], bool] = lambda item: True) -> T | None:
        """The longest waiting item that fits ``free`` (and is ``eligible``), taken off the queue."""
        for index, item in enumerate(self._items):
            if self._demand(item).fits_in(free) and eligible(item):
                return self._items.pop(index)
        return None

    def remove(self, item: T) -> None:
        self._items.remove(item)

"""Where a job's tasks run: one driver per job, handed an executor.

A job's driver in the library (``generate_dataset``, ``convert_dataset``, ``build_index``,
``compress``) submits its tasks to an :class:`Executor` and waits for them; it never knows whether
they ran here or on a cluster.
:class:`LocalExecutor` runs each task at once in this process (tests, tools, small collections);
``jobs.ray_runtime.RayExecutor`` runs each as a Ray task. A task's handle may be passed as an argument of a
later task: the executor hands that task its result (Ray resolves top-level object references the same
way), so a chain of tasks is written once for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from teran_core.progress import Progress

__all__ = ["Executor", "LocalExecutor"]


class Executor(Protocol):
    """Runs a job's tasks somewhere; see :class:`LocalExecutor` for the contract."""

    def submit(self, fn: Callable, *args, cpus: float = 1.0, retries: int = 2) -> Any:
        """Starts ``fn(*args)`` on a worker holding ``cpus`` CPUs (retried up to ``retries`` times if the
        worker dies: a task must be safe to rerun); returns a handle."""

    def get(self, handles: list) -> list:
        """The results of ``handles``, in their order; a failed task raises its error."""

    def gather(self, handles: list, progress: Progress) -> list:
        """As :meth:`get`, counting each task into ``progress`` as it finishes (a failed task raises at once)."""


class LocalExecutor:
    """Runs every task at once, in this process, in submission order: a handle is the result.

    Example:
        >>> executor = LocalExecutor()
        >>> double = executor.submit(lambda x: 2 * x, 21)
        >>> executor.get([executor.submit(lambda x: x + 1, double)])
        [43]
    """

    def submit(self, fn: Callable, *args, cpus: float = 1.0, retries: int = 2) -> Any:
        return fn(*args)

    def get(self, handles: list) -> list:
        return list(handles)

    def gather(self, handles: list, progress: Progress) -> list:
        progress.update(len(handles))
        progress.close()
        return list(handles)


"""Memory and CPU of a process tree: what benchmarks and the pipeline job report.

A local Ray instance is a tree below its driver (GCS, raylet, and the workers below the raylet), so
sampling the driver's tree covers every Ray process of a one-machine run. Processes on other nodes
of a cluster are not seen. Nothing here imports Ray.

The tree, PSS, CPU times and names come from psutil. Two Linux facts it does not give are read from
/proc by hand: a process's peak RSS (``VmHWM`` in ``/proc/<pid>/status``; psutil reports the current
RSS only) and resetting that peak (``/proc/<pid>/clear_refs``), which makes a peak one stage's own.
"""

from __future__ import annotations

import os
import threading
import time

import psutil

__all__ = ["TreeSampler", "tree_pids"]

GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError)  # ended while we looked, or not ours


def _peak_rss(pid: int) -> int:
    """The kernel's high-water mark of the process's RSS, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants.

    Example:
        >>> tree_pids(os.getpid())[0] == os.getpid()
        True
    """
    try:
        return [root, *(child.pid for child in psutil.Process(root).children(recursive=True))]
    except GONE:
        return [root]


class TreeSampler(threading.Thread):
    """Samples this process and its descendants every ``period`` s until :meth:`stop`.

    Kept per sample: the PSS of the whole tree (:attr:`peak`, the largest total; shared pages, the
    object store included, counted once), and per process its CPU seconds (:attr:`cpu`, user +
    system, the last value seen; :attr:`inherited`, those at the first sample of the processes
    already there), its name (:attr:`names`) and its peak RSS (:attr:`rss_peak`, from the kernel's
    high-water mark VmHWM, so a spike between two samples is not missed).

    Args:
        period: seconds between samples.
        reset_peaks: first reset every process's VmHWM (``/proc/<pid>/clear_refs``), so the peaks are
            this sampler's window only, e.g. one stage of a job whose Ray workers outlive the stage.

    Example:
        >>> sampler = TreeSampler(period=0.05)
        >>> sampler.start()
        >>> sampler.stop()
        >>> sampler.rss_peak[os.getpid()] > 0 and sampler.peak > 0
        True
    """

    def __init__(self, period: float = 0.5, reset_peaks: bool = False):
        super().__init__(daemon=True)
        self.period, self.peak, self.done = period, 0, threading.Event()
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.rss_peak: dict[int, int] = {}
        self.inherited: dict[int, float] = {}
        self.started = time.monotonic()
        if reset_peaks:
            for pid in tree_pids(os.getpid()):
                try:
                    with open(f"/proc/{pid}/clear_refs", "w") as f:
                        f.write("5")  # 5: reset the peak RSS to the current RSS (Linux >= 4.0)
                except OSError:
                    continue  # ended, or not ours: its peak stays the lifetime one

    def sample(self) -> None:
        pss = 0
        for pid in tree_pids(os.getpid()):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    pss += process.memory_full_info().pss
                    times = process.cpu_times()
                    name = (process.cmdline() or [process.name()])[0].rsplit("/", 1)[-1][:40]
                self.rss_peak[pid] = max(self.rss_peak.get(pid, 0), _peak_rss(pid))
                self.cpu[pid] = times.user + times.system
                # a Ray worker renames itself once it runs something; back to IDLE, it keeps that name
                if pid not in self.names or not name.startswith("ray::IDLE"):
                    self.names[pid] = name
            except (*GONE, StopIteration):
                continue
        self.peak = max(self.peak, pss)
        if not self.inherited:
            self.inherited = dict(self.cpu)

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.sample()

    def worked(self, pid: int, busy: float = 0.02) -> bool:
        """Whether ``pid`` did work in this window: it started after the first sample, or used more than
        ``busy`` of a core since. A Ray worker left idle by an earlier stage keeps its memory but did not."""
        if pid not in self.inherited:
            return True
        return self.cpu.get(pid, 0.0) - self.inherited[pid] > busy * (time.monotonic() - self.started)

    def largest_child(self) -> tuple[str, int]:
        """(name, peak RSS bytes) of the descendant with the largest peak RSS among those that :meth:`worked`;
        ("", 0) without one."""
        me = os.getpid()
        pid = max((p for p in self.rss_peak if p != me and self.worked(p)), key=self.rss_peak.get, default=None)
        return ("", 0) if pid is None else (self.names.get(pid, "?"), self.rss_peak[pid])

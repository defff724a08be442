"""A stage's largest process is one that worked in the stage, not a big idle worker left by the stage before."""

import subprocess
import sys
import time

from teran_core.procmon import TreeSampler

# holds ``mb`` MiB, busy for ``busy_s`` seconds, then says so and sleeps until killed
CHILD = """
import sys, time
block = bytearray({mb} * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.monotonic() + {busy_s}
while time.monotonic() < end:
    pass
print("ready", flush=True)
time.sleep(600)
"""


def start_child(mb: int, busy_s: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(mb=mb, busy_s=busy_s)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_an_idle_worker_from_before_the_window_is_not_the_largest():
    idle = start_child(mb=300, busy_s=0)  # a big worker an earlier stage left behind
    try:
        sampler = TreeSampler(period=0.05, reset_peaks=True)
        sampler.sample()
        sampler.start()
        time.sleep(0.3)
        worker = start_child(mb=60, busy_s=0.5)  # this stage's worker: smaller, but it works
        try:
            time.sleep(0.3)
            sampler.stop()
        finally:
            worker.kill()
        assert sampler.rss_peak[idle.pid] > 300 * 2**20  # seen, and bigger
        assert not sampler.worked(idle.pid) and sampler.worked(worker.pid)
        name, rss = sampler.largest_child()
        assert rss == sampler.rss_peak[worker.pid] and 60 * 2**20 < rss < 300 * 2**20
    finally:
        idle.kill()

"""A stage's largest process is one that worked in the stage, not a big idle worker left by the stage before."""

import json
import subprocess
import sys

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

# run in a fresh process, so the sampled tree holds only its two children (not pytest's Ray or S3 servers)
SCENARIO = """
import json, subprocess, sys, time
from teran_core.procmon import TreeSampler

def start_child(mb, busy_s):
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(mb=mb, busy_s=busy_s)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child

idle = start_child(300, 0)  # a big worker an earlier stage left behind
sampler = TreeSampler(period=0.05, reset_peaks=True)
sampler.sample()
sampler.start()
time.sleep(0.3)
worker = start_child(60, 0.5)  # this stage's worker: smaller, but it works
time.sleep(0.3)
sampler.stop()
worker.kill()
idle.kill()
print(json.dumps({"idle_peak": sampler.rss_peak[idle.pid], "worker_peak": sampler.rss_peak[worker.pid],
                  "idle_worked": sampler.worked(idle.pid), "worker_worked": sampler.worked(worker.pid),
                  "largest": sampler.largest_child()[1]}))
"""


def test_an_idle_worker_from_before_the_window_is_not_the_largest():
    out = subprocess.run([sys.executable, "-c", f"CHILD = {CHILD!r}\n{SCENARIO}"], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout)
    assert seen["idle_peak"] > 300 * 2**20 > seen["worker_peak"] > 60 * 2**20  # both seen; the idle one is bigger
    assert not seen["idle_worked"] and seen["worker_worked"]
    assert seen["largest"] == seen["worker_peak"]

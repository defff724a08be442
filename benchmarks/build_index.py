"""``teran build-index`` over embedding sets of several sizes in one Ray session: warm time per item.

    python benchmarks/build_index.py --embeddings /data/scale/n10000/embeddings-compressed /data/scale/n170000/embeddings-compressed

In ``benchmarks/scale.py`` build-index is a pipeline stage of a few seconds, and its wall time
includes whatever Ray worker processes start during it: none in a run from scratch (earlier stages
started them), about 10 s when a rerun starts at build-index. At 10K images that start-up is ten
times the build itself. This script builds every set with the shipped defaults (the parts the
pipeline builds for the set's store: global vectors plus centroid lists for a compressed set,
global plus token parts for fp16), once to start the workers, then ``--repeats`` times each, in
one Ray session, and prints per set the median wall, the items built (vectors plus centroid-list
entries) and µs per item, and the largest set's time per item over the smallest's (#20's target:
at most 1.3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jobs.config import RayConfig  # noqa: E402
from jobs.ray_runtime import RayExecutor  # noqa: E402
from teran_core.embedding_set import EmbeddingSet  # noqa: E402
from teran_core.index.config import COMPRESSED_SET_PARTS, IndexSection  # noqa: E402
from teran_core.index.run import build_index  # noqa: E402
from teran_core.storage import resolve  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", nargs="+", required=True, help="embedding set folders (holding images/ and captions/), smallest first")
    p.add_argument("--repeats", type=int, default=3, help="timed builds per set, after one untimed build of the first set")
    p.add_argument("--workdir", help="where the indexes go (each removed after its build; default: a temporary folder)")
    return p.parse_args(argv)


def section_for(embeddings) -> IndexSection:
    """The shipped index defaults with the parts the pipeline builds for this set's token store."""
    compressed = EmbeddingSet.open(embeddings.join("images")).compressed
    return IndexSection(parts=list(COMPRESSED_SET_PARTS) if compressed else IndexSection().parts, use_gpu=False)


def timed_builds(embeddings, section: IndexSection, executor: RayExecutor, workdir: Path, repeats: int) -> list[dict]:
    """``repeats`` builds of one set into ``workdir``; each build's summary (wall_s, parts)."""
    summaries = []
    for _ in range(repeats):
        summaries.append(build_index(embeddings, resolve(str(workdir / "index")), section, executor, overwrite=True))
    resolve(str(workdir / "index")).remove()
    return summaries


def main(argv=None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="teran-build-"))
    sets = [resolve(e) for e in args.embeddings]
    executor = RayExecutor(RayConfig(num_cpus=os.cpu_count()))
    timed_builds(sets[0], section_for(sets[0]), executor, workdir, 1)  # starts Ray and its workers: not measured
    print(f"{'embeddings':<60} {'parts':<40} {'items':>12} {'median s':>9} {'runs s':<22} {'us/item':>8}")
    per_item = {}
    for embeddings in sets:
        section = section_for(embeddings)
        runs = timed_builds(embeddings, section, executor, workdir, args.repeats)
        items = sum(p["ntotal"] for p in runs[0]["parts"].values())
        wall = statistics.median(r["wall_s"] for r in runs)
        per_item[embeddings.uri] = wall / items
        factories = ",".join(sorted({p["factory"] for p in runs[0]["parts"].values()}))
        walls = " ".join(f"{r['wall_s']:.2f}" for r in runs)
        print(f"{embeddings.uri[-60:]:<60} {factories[:40]:<40} {items:>12,} {wall:>9.2f} {walls:<22} {1e6 * wall / items:>8.2f}")
    if len(sets) > 1:
        ratio = per_item[sets[-1].uri] / per_item[sets[0].uri]
        print(f"time per item, largest / smallest set: {ratio:.2f} {'ok' if ratio <= 1.3 else 'MISSED'} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's training budget: dev recall after each epoch, per model and learning rate, in one process.

    python benchmarks/demo_budget.py --model global-only --lr 3e-3 1e-3 3e-4 --epochs 1
    python benchmarks/demo_budget.py --model global-only --lr 3e-4 --epochs 4
    python benchmarks/demo_budget.py --model teran --lr 1e-3 --epochs 2

Generates the demo's dataset (``configs/demo.yaml``'s data section, in a temporary folder), then
trains each (model, lr) from the same seed with the demo's training step (``teran_core.train.loop``:
frozen cached backbone, batch 32, gradient clipping 2.0) and validates on the demo's dev images
after every epoch, as ``teran train`` does. No Ray: it answers "is the comparison's budget fair to
the baseline", not how fast the job runs. On the 2-core machine one epoch takes 1-2 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import pyarrow as pa
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jobs.demo_config import DemoJobConfig  # noqa: E402
from jobs.demo_plan import MODELS, demo_plan  # noqa: E402
from teran_core.config import load_config  # noqa: E402
from teran_core.data import CaptionCollator, DatasetManifest, read_shard  # noqa: E402
from teran_core.data.synth import SynthConfig, generate_dataset  # noqa: E402
from teran_core.losses import TeranLoss  # noqa: E402
from teran_core.model.teran import TERAN  # noqa: E402
from teran_core.train.config import OptimConfig  # noqa: E402
from teran_core.train.loop import DevSet, HiddenCache, PairEncoder, train_epoch, validate  # noqa: E402
from teran_core.train.pairs import CaptionIndex, PairBuilder  # noqa: E402
from teran_core.train.state import TrainState  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=[name for name, m in MODELS.items() if m.loss_weights], default="global-only")
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--config", default=os.path.join(REPO, "configs", "demo.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a demo config override, as for `teran demo` (e.g. --set data.images=400); repeatable")
    return p.parse_args(argv)


def train_pairs(root: str) -> pa.Table:
    """Every (image, caption) pair of the train split, features included."""
    manifest = DatasetManifest.load(root)
    pairs = PairBuilder(CaptionIndex.build(manifest, "train", CaptionCollator()))
    return pa.concat_tables([pairs(read_shard(manifest, "images", i)) for i in range(len(manifest.shards["images"]))])


def run(cfg: DemoJobConfig, model_name: str, lr: float, epochs: int, table: pa.Table, dev: DevSet) -> TERAN:
    """Trains one model as the demo does, printing dev recall after every epoch; returns it."""
    torch.manual_seed(cfg.data.seed)
    model_cfg = dataclasses.replace(cfg.model, **MODELS[model_name].loss_weights)
    model = TERAN(model_cfg).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    encoder, loss_fn = PairEncoder(model, HiddenCache(cfg.training.cache_backbone_mb)), TeranLoss(model_cfg)
    batch, state = cfg.training.batch_size, TrainState()
    optim = OptimConfig(lr=lr, lr_step_epochs=epochs)  # one learning rate throughout: the one under test
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(table.num_rows).tolist()
        batches = (table.take(order[step * batch:(step + 1) * batch]) for step in range(table.num_rows // batch))
        loss = train_epoch(encoder, loss_fn, optimizer, batches, optim, epoch - 1, state)["loss"]
        r = validate(model, dev)
        print(f"{model_name:<12} lr {lr:<8g} epoch {epoch}: mean loss {loss:7.1f}  dev t2i R@10 "
              f"{r['t2i_r10']:5.1f}  i2t R@10 {r['i2t_r10']:5.1f}  rsum {r['rsum']:6.1f}  ({time.perf_counter() - start:.0f} s)",
              flush=True)
    return model.eval()


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(DemoJobConfig, args.config, args.overrides)
    with tempfile.TemporaryDirectory(prefix="teran-budget-") as root:
        generate_dataset(SynthConfig(**demo_plan(cfg)["synth"].config["synth"]), root)  # the demo's own dataset
        table = train_pairs(root)
        dev = DevSet.load(DatasetManifest.load(root), "dev", cfg.training.dev_images, CaptionCollator())
    print(f"{table.num_rows} training pairs, {cfg.training.dev_images} dev images, batch {cfg.training.batch_size}; "
          f"model {args.model} ({MODELS[args.model].what}); {os.cpu_count()} cores", flush=True)
    for lr in args.lr:
        run(cfg, args.model, lr, args.epochs, table, dev)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's distillation budget: how good the distilled global head gets, for what time, on the 1K test split.

    python benchmarks/distill_budget.py --teran demo_output/models/teran --epochs 4 \
        --setting teacher_temperature=1 student_scale=6 batch_size=32 lr=1e-3 \
        --setting teacher_temperature=0.05 student_scale=30 batch_size=128 lr=2e-3
    python benchmarks/distill_budget.py --teran demo_output/models/teran --epochs 2 --readout first mean \
        --setting teacher_temperature=0.05 student_scale=30 batch_size=128 lr=2e-3
    python benchmarks/distill_budget.py --teran demo_output/models/teran --distill-images 14000 --steps 1176 \
        --eval-every 196 --setting teacher_temperature=0.05 student_scale=30 batch_size=128 lr=2e-3
    python benchmarks/distill_budget.py --teran demo_output/models/teran --epochs 4 --eval-every 49 --readout mean \
        --dropout 0 --prototypes 1024 2048 --setting teacher_temperature=0.05 student_scale=30 batch_size=128 lr=3e-3

Generates the demo's dataset (``configs/demo.yaml``), trains the demo's TERAN for its one epoch as
``benchmarks/demo_budget.py`` does (or loads it from ``--teran`` when that folder holds a checkpoint,
else saves it there), then distills a head per setting with the distill job's step
(``teran_core.distill``: frozen TERAN token sets cached, ListNet against its alignment scores) and
prints, every ``--eval-every`` steps of every ``--setting`` (the loss's and optimiser's knobs), the rsum of
the head's vectors alone on the whole 1K test split (5,000 captions) against exhaustive TERAN, their
ratio, the dev top-10 overlap and the seconds spent. No Ray.

``--prototypes K ...`` adds a prototype head of K prototypes per K (docs/distill.md), started, as the
job starts one, from the k-means of the tokens of the first 1,000 training images and their captions.

``--distill-images N`` distills on the train split of a larger dataset from the same generator and seed
(the demo's images and splits are its first ones, so the test split stays unseen): the teacher labels
any pair, so the head can see more items than TERAN was trained on.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from demo_budget import run as train_teran  # noqa: E402
from demo_budget import train_pairs

from jobs.demo_config import DemoJobConfig  # noqa: E402
from jobs.demo_plan import demo_plan  # noqa: E402
from teran_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from teran_core.config import load_config  # noqa: E402
from teran_core.data import CaptionCollator, DatasetManifest  # noqa: E402
from teran_core.data.synth import SynthConfig, generate_dataset  # noqa: E402
from teran_core.distill import DevAgreement, DistillLossConfig, FrozenTokens, TokenPool, distill_step  # noqa: E402
from teran_core.distill.loop import HeadPair, content_tokens  # noqa: E402
from teran_core.model.global_head import GlobalHeadConfig, build_global_head  # noqa: E402
from teran_core.train.loop import DevSet  # noqa: E402
from teran_core.train.pairs import collate_pairs  # noqa: E402

SETTING = {"teacher_temperature": 1.0, "student_scale": 6.0, "hard_negatives": 0, "batch_size": 32, "lr": 1e-3}


def _knob(text: str) -> tuple[str, float]:
    key, _, value = text.partition("=")
    if key not in SETTING or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE with KEY one of {', '.join(SETTING)}")
    return key, type(SETTING[key])(float(value))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teran", default=None, help="a folder: the trained demo TERAN is loaded from it, or saved there")
    p.add_argument("--setting", nargs="+", action="append", metavar="KEY=VALUE", type=_knob,
                   help=f"one setting to distill with, as knobs of {', '.join(SETTING)}; repeat for more")
    p.add_argument("--epochs", type=int, default=1, help="passes over the distill pairs per setting")
    p.add_argument("--steps", type=int, default=0, help="optimiser steps per setting instead of --epochs")
    p.add_argument("--eval-every", type=int, default=0, help="steps between test measurements (default: once per epoch)")
    p.add_argument("--distill-images", type=int, default=0,
                   help="distill on the train split of this many synthetic images (same seed) instead of the demo's")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--readout", choices=("first", "mean"), nargs="*", default=["first"],
                   help="the transformer head's readout(s): every --setting is distilled once per readout")
    p.add_argument("--prototypes", type=int, nargs="*", default=[],
                   help="prototype heads of these widths K, each distilled with every --setting too")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "demo.yaml"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(DemoJobConfig, args.config)
    with tempfile.TemporaryDirectory(prefix="teran-distill-budget-") as root:
        generate_dataset(SynthConfig(**demo_plan(cfg)["synth"].config["synth"]), root)
        manifest = DatasetManifest.load(root)
        table = train_pairs(root)
        dev = DevSet.load(manifest, "dev", cfg.training.dev_images, CaptionCollator())
        test = DevSet.load(manifest, "test", cfg.data.test_images, CaptionCollator())
    distill_table = table
    if args.distill_images:
        with tempfile.TemporaryDirectory(prefix="teran-distill-pairs-") as root:
            generate_dataset(SynthConfig(**{**demo_plan(cfg)["synth"].config["synth"], "images": args.distill_images}), root)
            distill_table = train_pairs(root)
    print(f"distill pairs: {distill_table.num_rows} (TERAN's train split: {table.num_rows})", flush=True)
    if args.teran and os.path.exists(os.path.join(args.teran, "teran_config.json")):
        teran = load_checkpoint(args.teran)
    else:
        teran = train_teran(cfg, "teran", cfg.training.lr, cfg.training.epochs, table, dev)
        if args.teran:
            save_checkpoint(teran, args.teran)
    started = time.perf_counter()
    held_out = DevAgreement(teran, test)
    print(f"test split: {cfg.data.test_images} images, {len(test.caption_image_index)} captions; exhaustive TERAN rsum "
          f"{held_out.teacher_rsum:.1f} (encoded and scored in {time.perf_counter() - started:.0f} s)", flush=True)
    dev_agreement = DevAgreement(teran, dev)
    heads = [GlobalHeadConfig(layers=args.layers, dropout=args.dropout, readout=readout) for readout in args.readout]
    heads += [GlobalHeadConfig(kind="prototypes", prototypes=k) for k in args.prototypes]
    init_tokens = content_tokens(teran, DevSet.load(manifest, "train", 1000, CaptionCollator())) if args.prototypes else None
    for knobs, head_config in itertools.product(args.setting or [[]], heads):
        setting = {**SETTING, **dict(knobs)}
        kind = f"prototypes={head_config.prototypes}" if head_config.kind == "prototypes" else f"readout={head_config.readout}"
        name = " ".join(f"{key}={value:g}" for key, value in setting.items()) + f" {kind}"
        torch.manual_seed(cfg.data.seed)
        frozen = FrozenTokens(teran, max_mb=1024)  # each setting pays the first epoch's TERAN pass, as the job does
        head = build_global_head(head_config, teran.config.embed_size)
        if head_config.kind == "prototypes":
            head.init_from(init_tokens)
        lr, batch_size = setting["lr"], setting["batch_size"]
        pair, optimizer = HeadPair(head), torch.optim.Adam(head.parameters(), lr=lr)
        loss_cfg = DistillLossConfig(teacher_temperature=setting["teacher_temperature"],
                                     student_scale=setting["student_scale"], hard_negatives=setting["hard_negatives"])
        pool = TokenPool(loss_cfg.pool_batches)
        per_epoch = distill_table.num_rows // batch_size
        steps, every = args.steps or args.epochs * per_epoch, args.eval_every or per_epoch
        start, order = time.perf_counter(), []
        for step in range(1, steps + 1):
            if not order:  # a new epoch: every pair once, in a fresh order
                order = torch.randperm(distill_table.num_rows)[: per_epoch * batch_size].tolist()
            head.train()
            batch = collate_pairs(distill_table.take(order[:batch_size]))
            del order[:batch_size]
            images, captions = frozen(batch)
            distill_step(pair, teran.config, images, captions, optimizer, lr, 2.0, loss_cfg, pool,
                         (batch["image_id"], batch["caption_id"]))
            if step % every == 0 or step == steps:
                seconds = time.perf_counter() - start
                rsum = held_out.measure(head)["rsum"]
                print(f"{name}, step {step} (epoch {step / per_epoch:.2f}): test rsum distilled {rsum:6.1f} / exhaustive "
                      f"{held_out.teacher_rsum:6.1f} = {rsum / held_out.teacher_rsum:.3f}; dev top-10 overlap "
                      f"{dev_agreement.measure(head)['top10_overlap']:.3f}  ({seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

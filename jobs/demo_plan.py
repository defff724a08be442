"""The end-to-end demo's plan: what it runs, as the configs of the real jobs (its report: ``jobs/demo_report.py``).

The demo trains a small TERAN and a global-only model with the same budget on a grounded synthetic
dataset, distills a global head over the trained TERAN (docs/distill.md), then runs each (and the
untrained model) through encode -> build-index -> evaluate on the 1K-image test split. Every step is a real job with a config file written under ``<root>/configs``,
so each can be rerun or inspected alone.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from jobs.config import RayConfig
from jobs.plan import Step
from teran_core.config import knob
from teran_core.model.config import TeranConfig
from teran_core.storage import StorageConfig

__all__ = ["DemoModel", "DemoJobConfig", "MODELS", "demo_plan"]


class DemoModel(NamedTuple):
    what: str
    loss_weights: dict | None  # None: not trained by `teran train`
    evaluators: tuple[str, ...]  # how its rankings are made: each model is scored the way it was trained to score
    distilled_from: str | None = None  # a demo model whose exported TERAN `teran distill` gives a global head
    candidates: str = "union"  # two-stage candidate source, both directions: "global", "tokens" or "union"


MODELS = {
    "teran": DemoModel("TERAN, trained (MrSw alignment loss)", {"alignment_weight": 1.0, "matching_weight": 0.0},
                       ("exhaustive", "global", "two-stage")),
    # the same TERAN with a distilled global head in slot 0: exhaustive would repeat teran's exactly
    "distilled": DemoModel("TERAN above + its distilled global head (teran distill)", None, ("global", "two-stage"),
                           distilled_from="teran", candidates="global"),
    # its word-region alignment was never trained: it ranks by slot 0 alone
    "global-only": DemoModel("global-only model, same budget (matching loss on slot 0)",
                             {"alignment_weight": 0.0, "matching_weight": 1.0}, ("global",)),
    # chance either way; two-stage would re-rank candidates with the same random scores
    "untrained": DemoModel("TERAN, untrained (random heads, pretrained backbone)", None, ("exhaustive", "global")),
}
GLOBAL_PARTS, TOKEN_PARTS = ["images-global", "captions-global"], ["images-regions", "captions-words"]
K_SWEEP = (10, 20, 50)  # with the headline K'=100: the demo's recall-vs-K' plot has four points


@dataclasses.dataclass
class DemoData:
    images: int = knob(4000, ge=10)  # synthetic images in all: test, then dev, then train
    test_images: int = knob(1000, ge=10)  # the evaluated 1K test split (5 captions each)
    dev_images: int = knob(500, ge=1)  # validated every epoch
    feature_dim: int = knob(128, ge=4)  # region feature size; 2048 for real bottom-up features
    seed: int = knob(0, ge=0)
    noise: float = knob(1.0, ge=0)  # see teran_core/data/synth/spec.py
    group_size: int = knob(4, ge=1)  # hard negatives per image + 1: same objects, other attributes and layout
    max_regions: int = knob(36, ge=2)  # regions per image at most (objects + background)


@dataclasses.dataclass
class DemoTraining:
    epochs: int = knob(1, ge=1)  # the same budget for both trained models
    batch_size: int = knob(32, ge=2)
    lr: float = knob(1e-3, gt=0)  # TERAN's: far above the reference's 1e-5, small heads trained from scratch for one epoch
    global_only_lr: float = knob(3e-4, gt=0)  # the global-only model's: its best of 3e-3, 1e-3, 3e-4 after one epoch (dev rsum 8.4, 26.8, 35.6)
    cache_backbone_mb: int = knob(1024, ge=0)  # the frozen backbone's hidden states are computed once
    dev_images: int = knob(500, ge=1)
    torch_threads: int = knob(2, ge=0)  # train and distill: the materialised pairs leave the second core idle; 0: Ray's one per worker


@dataclasses.dataclass
class DemoDistill:
    """The distill step's knobs; defaults are the best measured by benchmarks/distill_budget.py (docs/distill.md)."""

    epochs: int = knob(2, ge=1)  # later epochs cost the head alone: TERAN's tokens are computed once
    lr: float = knob(2e-3, gt=0)  # the head alone, from scratch: far above ALADIN's 1e-5
    layers: int = knob(2, ge=1)  # head layers (ALADIN: 2)
    teacher_temperature: float = knob(0.05, gt=0)  # ALADIN's 1 leaves this small TERAN's softmax nearly flat
    student_scale: float = knob(30.0, gt=0)  # ALADIN's 6 cannot express a teacher that sharp
    batch_size: int = knob(128, ge=2)  # longer in-batch lists than ALADIN's 32, at about the same cost per epoch


@dataclasses.dataclass
class DemoEncode:
    batch_size: int = knob(128, ge=1)
    actors: int = knob(1, ge=1)


@dataclasses.dataclass
class DemoJobConfig:
    root: str = "demo_output"  # every artefact goes below this folder or s3:// prefix
    data: DemoData = dataclasses.field(default_factory=DemoData)
    model: TeranConfig = dataclasses.field(default_factory=TeranConfig)  # the demo YAML makes it small
    training: DemoTraining = dataclasses.field(default_factory=DemoTraining)
    distill: DemoDistill = dataclasses.field(default_factory=DemoDistill)
    encode: DemoEncode = dataclasses.field(default_factory=DemoEncode)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def check(self) -> list[str]:
        problems = []
        if self.data.test_images + self.data.dev_images >= self.data.images:
            problems.append(f"data.images: got {self.data.images}, expected more than test_images + dev_images "
                            f"({self.data.test_images + self.data.dev_images}) so that a train split remains")
        if self.model.feat_dim != self.data.feature_dim:
            problems.append(f"model.feat_dim: got {self.model.feat_dim}, expected data.feature_dim ({self.data.feature_dim})")
        return problems


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def demo_plan(cfg: DemoJobConfig) -> dict[str, Step]:
    """Every job the demo runs, in order, keyed by step name (``train-teran``, ``encode-untrained`` …).

    Example:
        >>> plan = demo_plan(DemoJobConfig(root="/tmp/demo"))
        >>> [name for name in plan if "untrained" in name], plan["model-untrained"].output
        (['model-untrained', 'encode-untrained', 'build-index-untrained', 'evaluate-untrained'], '/tmp/demo/models/untrained')
    """
    root, common = cfg.root, {"storage": dataclasses.asdict(cfg.storage), "ray": dataclasses.asdict(cfg.ray)}
    d, t = cfg.data, cfg.training
    synth = dict(images=d.images, seed=d.seed, feature_dim=d.feature_dim, noise=d.noise, group_size=d.group_size,
                 max_regions=d.max_regions, test_images=d.test_images, dev_images=d.dev_images)
    # the test split as a dataset of its own: the generator is deterministic per image index, so these
    # are the very images and captions of the training dataset's test split
    test_only = dict(synth, images=d.test_images, dev_images=0)
    steps = {
        "synth": Step("synth", {"synth": synth, "output": {"uri": _join(root, "dataset"), "overwrite": True}, **common}),
        "synth-test": Step("synth", {"synth": test_only, "output": {"uri": _join(root, "test-dataset"), "overwrite": True}, **common}),
    }
    for name, model in MODELS.items():
        if model.loss_weights is not None:
            lr = t.global_only_lr if name == "global-only" else t.lr  # each trained model at its best rate for the budget
            steps[f"train-{name}"] = Step("train", {
                "model": dict(dataclasses.asdict(cfg.model), **model.loss_weights),
                "data": {"dataset": _join(root, "dataset"), "dev_images": t.dev_images, "materialize": True},
                "optim": {"lr": lr, "epochs": t.epochs, "batch_size": t.batch_size, "lr_step_epochs": max(t.epochs, 1),
                          "cache_backbone_mb": t.cache_backbone_mb},
                "run": {"name": f"demo-{name}", "storage_path": _join(root, "runs"), "export": _join(root, "models", name),
                        "log_every_s": 20.0},
                "scaling": {"torch_threads": t.torch_threads},
                **common,
            })
        if model.distilled_from:
            dist = cfg.distill
            steps[f"distill-{model.distilled_from}"] = Step("distill", {
                "teacher": {"checkpoint": _join(root, "models", model.distilled_from)},
                "head": {"layers": dist.layers},
                "loss": {"teacher_temperature": dist.teacher_temperature, "student_scale": dist.student_scale},
                "distill": {"cache_tokens_mb": t.cache_backbone_mb},
                "data": {"dataset": _join(root, "dataset"), "dev_images": t.dev_images, "materialize": True},
                "optim": {"lr": dist.lr, "epochs": dist.epochs, "batch_size": dist.batch_size, "lr_step_epochs": max(dist.epochs, 1)},
                "run": {"name": f"demo-{name}", "storage_path": _join(root, "runs"), "export": _join(root, "models", name),
                        "log_every_s": 20.0},
                "scaling": {"torch_threads": t.torch_threads},
                **common,
            })
        if model.loss_weights is None and not model.distilled_from:  # no job makes it: an untrained TERAN, seeded
            steps[f"model-{name}"] = Step("model", {"model": dataclasses.asdict(cfg.model), "seed": d.seed},
                                          output=_join(root, "models", name))
        emb, index = _join(root, "embeddings", name), _join(root, "index", name)
        steps[f"encode-{name}"] = Step("encode", {
            "input": {"dataset": _join(root, "test-dataset")}, "model": {"checkpoint": _join(root, "models", name)},
            "output": {"uri": emb, "overwrite": True},
            "encode": {"batch_size": cfg.encode.batch_size, "actors": cfg.encode.actors, "num_gpus": 0,
                       "cpus_per_actor": 0.5, "precision": "float32", "progress_interval_s": 20},
            **common,
        })
        # token parts serve two-stage's token candidates only
        parts = GLOBAL_PARTS + (TOKEN_PARTS if "two-stage" in model.evaluators and model.candidates != "global" else [])
        steps[f"build-index-{name}"] = Step("build-index", {"paths": {"embeddings": emb, "index": index, "overwrite": True},
                                                            "index": {"use_gpu": False, "parts": parts}, **common})
        steps[f"evaluate-{name}"] = Step("evaluate", {
            "paths": {"dataset": _join(root, "test-dataset"), "split": "test", "index": index, "output": _join(root, "eval", name)},
            # the 1K test split scored at once, as the reference's 1K-image test sets; K' = 10% of it
            # recall of 1,000 caption and 250 image queries (seeded sample) against the whole split: two-stage
            # over all 6,000 queries would take most of the demo's 10 minutes. Each K' of the sweep costs
            # 64-88% of the K'=100 pass (candidate generation does not shrink with K'; measured 20, 22, 27 s
            # against 31 s on a loaded 2-core machine), so three of them keep the sweep to the fewest the plot needs
            "eval": {"protocol": "all", "evaluators": list(model.evaluators), "actors": 1, "latency_queries": 20, "k_sweep": list(K_SWEEP), "queries": 1000,
                     "image_queries": 250,
                     "in_memory": True},  # a 1K collection fits in RAM: no parquet reads per query batch
            # masked: the semantics the models are trained with; the reference's 0-fill favours the
            # synthetic images with fewer than 36 regions (1K test, 1 epoch: t2i R@10 85.0 masked, 53.5 0-filled).
            # 128 neighbours per query token suffice for a 1K collection (t2i R@10 92.7 against 91.6 with the
            # default 1024, which is sized for 100K+ collections) and cost far less
            "two_stage": {"k_candidates": 100, "padding": "masked", "hits_per_token": 128,
                          "t2i_candidates": model.candidates, "i2t_candidates": model.candidates},
            **common,
        })
    return steps

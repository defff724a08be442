"""The end-to-end demo: what it runs, as the configs of the real jobs, and the comparison report.

The demo trains a small TERAN and a global-only model with the same budget on a grounded synthetic
dataset, distills a global head over the trained TERAN (docs/distill.md), then runs each (and the
untrained model) through encode -> build-index -> evaluate on the 1K-image test split. Every step is a real job with a config file written under ``<root>/configs``,
so each can be rerun or inspected alone.
"""

from __future__ import annotations

import dataclasses
import json
from typing import NamedTuple

from jobs.config import RayConfig
from jobs.plan import Step
from teran_core.config import knob
from teran_core.html_report.identity import describe_model
from teran_core.html_report.render import demo_page
from teran_core.model.config import TeranConfig
from teran_core.recall.report import evaluator_name
from teran_core.storage import Location, StorageConfig

__all__ = ["DemoModel", "DemoJobConfig", "MODELS", "demo_plan", "comparison_rows", "comparison_markdown", "summary_page"]


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


@dataclasses.dataclass
class DemoDistill:
    epochs: int = knob(1, ge=1)
    lr: float = knob(1e-3, gt=0)  # the head alone, from scratch, for one epoch: far above ALADIN's 1e-5 (benchmarks/distill_budget.py)
    layers: int = knob(2, ge=1)  # head layers (ALADIN: 2)
    teacher_temperature: float = knob(1.0, gt=0)


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
                **common,
            })
        if model.distilled_from:
            dist = cfg.distill
            steps[f"distill-{model.distilled_from}"] = Step("distill", {
                "teacher": {"checkpoint": _join(root, "models", model.distilled_from)},
                "head": {"layers": dist.layers},
                "loss": {"teacher_temperature": dist.teacher_temperature},
                "distill": {"cache_tokens_mb": t.cache_backbone_mb},
                "data": {"dataset": _join(root, "dataset"), "dev_images": t.dev_images, "materialize": True},
                "optim": {"lr": dist.lr, "epochs": dist.epochs, "batch_size": t.batch_size, "lr_step_epochs": max(dist.epochs, 1)},
                "run": {"name": f"demo-{name}", "storage_path": _join(root, "runs"), "export": _join(root, "models", name),
                        "log_every_s": 20.0},
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


METRICS = ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "rsum")


def comparison_rows(results: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(model, evaluator, metrics) rows from each model's evaluate results.json, in report order.

    Example:
        >>> m = {k: 1.0 for k in METRICS}
        >>> rows = comparison_rows({name: {"global_kind": "distilled" if name == "distilled" else "slot0",
        ...                                "evaluators": {e: {"metrics": m} for e in MODELS[name].evaluators}} for name in MODELS})
        >>> [(model, evaluator) for model, evaluator, _ in rows if model == "distilled"]
        [('distilled', 'distilled global'), ('distilled', 'two-stage, distilled candidates')]
    """
    rows = []
    for name, model in MODELS.items():
        kind = results[name].get("global_kind")
        for evaluator, result in results[name]["evaluators"].items():
            label = evaluator_name(evaluator, kind)
            if evaluator == "two-stage" and model.candidates == "global":
                label += f", {'distilled' if kind == 'distilled' else 'global'} candidates"
            rows.append((name, label, {k: result["metrics"][k] for k in METRICS}))
    return rows


def comparison_markdown(rows: list[tuple[str, str, dict]], notes: list[str]) -> str:
    """The demo's headline table (recalls in percent) with its notes."""
    header = "| model | evaluator | t2i R@1 | t2i R@5 | t2i R@10 | i2t R@1 | i2t R@5 | i2t R@10 | rsum |"
    lines = [header, "|" + " --- |" * 9]
    lines += [f"| {m} | {e} | " + " | ".join(f"{v[k]:.1f}" for k in METRICS) + " |" for m, e, v in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def summary_page(root: Location, cfg: DemoJobConfig, results: dict[str, dict], notes: list[str]) -> str:
    """The demo's ``report.html``: the comparison, the trained TERAN's alignments and gallery (its evaluation's
    ``examples.json``), its recall-vs-K' plots, both training curves, and links to each evaluation's page."""
    figures = {}
    for caption, path in (("TERAN two-stage: recall against K'", ("eval", "teran", "recall_vs_kprime.png")),
                          ("TERAN two-stage: R@10 against the pairs scored", ("eval", "teran", "recall_vs_pairs.png")),
                          *((f"training curves: {name}", ("models", name, "curves.png")) for name, m in MODELS.items() if m.loss_weights)):
        if root.join(*path).exists():
            figures[caption] = root.join(*path).read_bytes()
    examples_file = root.join("eval", "teran", "examples.json")
    examples = json.loads(examples_file.read_text()) if examples_file.exists() else None
    teran = results["teran"]
    header = [*((f"model {name}", describe_model(results[name].get("model"))) for name in MODELS),
              ("dataset", teran.get("run", {}).get("dataset", "-")), ("split", "test"),
              ("query sample", f"{teran['queries']['captions']} captions (t2i), {teran['queries']['images']} images (i2t): seeded sample"),
              ("seed", str(cfg.data.seed)), ("output", root.uri)]
    links = {name: f"eval/{name}/report.html" for name in MODELS}
    return demo_page(comparison_rows(results), notes, list(METRICS), examples, figures, links, header)

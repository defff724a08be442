"""The whole pipeline as one job: synth (or an existing dataset) -> encode [-> compress] -> build-index -> evaluate.

Every stage is the real job with a config this module writes (:func:`stages`), so each resumes as
that job does. The pipeline adds stage markers: ``<root>/pipeline/<stage>.json``, written atomically
after a stage succeeds, holding its config and measurements (wall time, items, bytes, peak memory,
spill). A rerun skips every stage whose marker exists and reports it from the marker; a marker whose
config differs from this run's is an error, never silently reused. The Ray wiring and the
measuring are in ``jobs/pipeline.py``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

from jobs.config import RayConfig
from jobs.demo_report import METRICS
from jobs.plan import Step, join_uri
from teran_core.compress.run import CompressSection
from teran_core.config import knob
from teran_core.data.synth import SynthConfig
from teran_core.embedding_set import KINDS, EmbeddingSet
from teran_core.encode.config import EncodeSection
from teran_core.index.config import IndexSection
from teran_core.index.layout import PartSpec
from teran_core.model.config import TeranConfig
from teran_core.recall.config import EvalSection
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import Location, StorageConfig

__all__ = ["PipelineJobConfig", "stages", "stage_items", "recall_row", "recall_rows", "summary_table"]


@dataclasses.dataclass
class PipelineData:
    """What the pipeline runs on."""

    dataset: str = ""  # an existing teran dataset (the folder holding dataset.json); "": synthesize one into <root>/dataset
    split: str = "test"  # the split whose pairs are evaluate's ground truth; its queries search the whole collection
    synth: SynthConfig = dataclasses.field(default_factory=SynthConfig)  # used when dataset is ""
    shard_mb: int = knob(128, ge=1)  # synthetic images shard size (the synth job's output.shard_mb)


@dataclasses.dataclass
class PipelineModel:
    """The model that encodes: a checkpoint, or a fresh untrained one (enough to measure cost, not recall)."""

    checkpoint: str = ""  # a teran checkpoint folder or reference .pth.tar; "": save an untrained model to <root>/model
    untrained: TeranConfig = dataclasses.field(default_factory=TeranConfig)  # its sizes when checkpoint is ""
    seed: int = knob(0, ge=0)  # initialisation of the untrained model


@dataclasses.dataclass
class PipelineJobConfig:
    """``teran pipeline``: one Ray job running every stage, resumable stage by stage, with one summary."""

    root: str = "pipeline_output"  # every stage's output, the step configs and the markers go below this folder or s3:// prefix
    data: PipelineData = dataclasses.field(default_factory=PipelineData)
    model: PipelineModel = dataclasses.field(default_factory=PipelineModel)
    encode: EncodeSection = dataclasses.field(default_factory=EncodeSection)  # the encode job's section, passed through
    # compressed: a compress stage rewrites the embeddings as centroid ids + residual bits (docs/engine.md), and
    # build-index and evaluate read that set; its index parts are then images-centroids / captions-centroids
    token_store: Literal["fp16", "compressed"] = "fp16"
    compress: CompressSection = dataclasses.field(default_factory=CompressSection)  # the compress job's section, passed through (compressed store only)
    index: IndexSection = dataclasses.field(default_factory=IndexSection)  # the build-index job's section, passed through
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)  # the evaluate job's section, passed through
    two_stage: TwoStageConfig = dataclasses.field(default_factory=TwoStageConfig)  # evaluate's two-stage settings
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)  # one store for every stage
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def check(self) -> list[str]:
        m, s, problems = self.model, self.data.synth, []
        if not self.data.dataset and not m.checkpoint and m.untrained.feat_dim != s.feature_dim:
            problems.append(f"model.untrained.feat_dim: got {m.untrained.feat_dim}, expected data.synth.feature_dim ({s.feature_dim})")
        # the token-level vectors each store serves: an index part's kind and a candidate source share the name
        right, wrong = ("centroids", "tokens") if self.token_store == "compressed" else ("tokens", "centroids")
        names = {vectors: sorted(PartSpec(side, vectors).name for side in KINDS) for vectors in (right, wrong)}
        if found := sorted(set(names[wrong]) & set(self.index.parts)):
            problems.append(f"index.parts: {', '.join(found)} with token_store: {self.token_store}; expected "
                            f"{' / '.join(names[right])} (token parts are IVF-Flat copies of the fp16 tokens, "
                            "centroid parts the compressed store's inverted lists)")
        used = {field: getattr(self.two_stage, field) for field in ("t2i_candidates", "i2t_candidates")}
        if wrong in {self.two_stage.union_with if v == "union" else v for v in used.values()}:
            problems.append(f"two_stage: candidates from {wrong!r} ({', '.join(f'{k}={v}' for k, v in used.items())}, "
                            f"union_with={self.two_stage.union_with}) with token_store: {self.token_store}; expected "
                            f"{right} or global")
        return problems


def stages(cfg: PipelineJobConfig) -> dict[str, Step]:
    """Every stage this config runs, in order, keyed by name.

    Example:
        >>> list(stages(PipelineJobConfig(root="/tmp/p")))
        ['synth', 'model', 'encode', 'build-index', 'evaluate']
        >>> list(stages(PipelineJobConfig(root="/tmp/p", token_store="compressed")))[2:]
        ['encode', 'compress', 'build-index', 'evaluate']
        >>> stages(PipelineJobConfig(root="/tmp/p", data=PipelineData(dataset="/d"))).keys() - {"synth"} == {"model", "encode", "build-index", "evaluate"}
        True
    """
    root, asdict = cfg.root, dataclasses.asdict
    common = {"storage": asdict(cfg.storage), "ray": asdict(cfg.ray)}
    dataset = cfg.data.dataset or join_uri(root, "dataset")
    checkpoint = cfg.model.checkpoint or join_uri(root, "model")
    emb, index = join_uri(root, "embeddings"), join_uri(root, "index")
    out: dict[str, Step] = {}
    if not cfg.data.dataset:
        # overwrite: synth has no partial resume, so a run killed before its marker starts the dataset again
        out["synth"] = Step("synth", {"synth": asdict(cfg.data.synth), "output": {"uri": dataset, "shard_mb": cfg.data.shard_mb,
                                                                                   "overwrite": True}, **common}, [], dataset)
    if not cfg.model.checkpoint:
        out["model"] = Step("model", {"model": asdict(cfg.model.untrained), "seed": cfg.model.seed}, [], checkpoint)
    out["encode"] = Step("encode", {"input": {"dataset": dataset, "kinds": "both"}, "model": {"checkpoint": checkpoint},
                                     "output": {"uri": emb, "overwrite": False},  # resumes shard by shard
                                     "encode": asdict(cfg.encode), **common}, [dataset, checkpoint], emb)
    if cfg.token_store == "compressed":  # the fp16 set stays: it is encode's resume state and compress's input
        fp16, emb = emb, join_uri(root, "embeddings-compressed")
        out["compress"] = Step("compress", {"paths": {"embeddings": fp16, "output": emb}, "compress": asdict(cfg.compress),
                                            **common}, [fp16], emb)
    out["build-index"] = Step("build-index", {"paths": {"embeddings": emb, "index": index, "overwrite": True},
                                               "index": asdict(cfg.index), **common}, [emb], index)
    out["evaluate"] = Step("evaluate", {"paths": {"dataset": dataset, "split": cfg.data.split, "index": index,
                                                   "output": join_uri(root, "eval")},
                                         "eval": asdict(cfg.eval), "two_stage": asdict(cfg.two_stage), **common},
                            [index, emb], join_uri(root, "eval"))
    return out


def stage_items(job: str, output: Location) -> int:
    """What a finished stage produced, counted from its output: images + captions of a dataset or an
    embedding set, vectors of an index, queries of an evaluation (0 for a checkpoint)."""
    if job == "synth":
        return sum(json.loads(output.join("dataset.json").read_text())["counts"].values())
    if job in ("encode", "compress"):
        return sum(len(EmbeddingSet.open(output.join(side), kind=side)) for side in ("images", "captions"))
    if job == "build-index":
        return sum(p["ntotal"] for p in json.loads(output.join("index.json").read_text())["parts"].values())
    if job == "evaluate":
        return sum(json.loads(output.join("results.json").read_text())["queries"].values())
    return 0


def recall_row(name: str, result: dict) -> dict:
    """One evaluator's (or one K' sweep point's) row of an evaluate results.json: recalls in percent,
    the share of pairs scored."""
    return {"evaluator": name, **{k: result["metrics"][k] for k in METRICS}, "pairs_fraction": result["pairs_fraction"]}


def recall_rows(results: dict) -> list[dict]:
    """One row per evaluator of an evaluate results.json (see :func:`recall_row`)."""
    return [recall_row(name, r) for name, r in results["evaluators"].items()]


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f}"


def summary_table(summary: dict) -> str:
    """The pipeline's summary as a text table: one line per stage, then the recall rows.

    Example:
        >>> row = {"wall_s": 2.0, "items": 10, "bytes_read": 0, "bytes_written": 2**20, "driver_rss_peak": 2**27,
        ...        "largest_process": ["raylet", 2**26], "tree_pss_peak": 2**28, "spilled_bytes": 0, "skipped": False}
        >>> print(summary_table({"stages": {"synth": row}, "recall": []}).splitlines()[2])
        synth               2.0        10        5.0        0.0        1.0     128      64 raylet                  256        0  ran
    """
    lines = [f"{'stage':<12} {'wall s':>10} {'items':>9} {'items/s':>10} {'read MiB':>10} {'write MiB':>10} "
             f"{'driver':>7} {'largest Ray process':>26} {'tree PSS':>8} {'spill':>8}  (peak MiB)"]
    lines.append("-" * len(lines[0]))
    for name, s in summary["stages"].items():
        rate = s["items"] / s["wall_s"] if s["wall_s"] else 0.0
        process, rss = s["largest_process"]
        lines.append(f"{name:<12} {s['wall_s']:>10.1f} {s['items']:>9} {rate:>10.1f} {s['bytes_read'] / 2**20:>10.1f} "
                     f"{s['bytes_written'] / 2**20:>10.1f} {_mib(s['driver_rss_peak']):>7} {_mib(rss):>7} {process[:18]:<18} "
                     f"{_mib(s['tree_pss_peak']):>8} {_mib(s['spilled_bytes']):>8}  {'skipped' if s['skipped'] else 'ran'}")
    if summary["recall"]:
        lines += ["", f"{'evaluator':<12} " + " ".join(f"{k:>8}" for k in METRICS) + f" {'pairs %':>9}"]
        lines += [f"{r['evaluator']:<12} " + " ".join(f"{r[k]:>8.1f}" for k in METRICS) + f" {100 * r['pairs_fraction']:>9.3f}"
                  for r in summary["recall"]]
    return "\n".join(lines)

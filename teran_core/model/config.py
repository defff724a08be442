"""TERAN's knobs as one dataclass, and the reader for the reference implementation's YAML configs.

Defaults are the reference COCO MrSw config (``configs/teran_coco_MrSw.yaml`` of mesnico/TERAN).
The reference hard-codes 4 heads and a 2048-wide feed-forward in all three transformers; here
they are knobs (``heads``, ``feedforward``) so that tiny test models are possible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import yaml

from teran_core.config import ConfigError, from_dict, knob

__all__ = ["ALIGNMENT_MODES", "TeranConfig", "teran_coco_mrsw", "load_reference_config"]

AlignmentMode = Literal["MrSw", "MrAVGw", "MwSr", "symm", "sum", "mean", "scan-sentences"]
ALIGNMENT_MODES: tuple[str, ...] = AlignmentMode.__args__


@dataclasses.dataclass
class TeranConfig:
    """Every knob of the TERAN model and its training loss."""

    feat_dim: int = knob(2048, ge=1)  # region feature size F; the visual transformer runs at this width
    embed_size: int = knob(1024, ge=1)  # joint embedding size D of every output token
    visual_layers: int = knob(4, ge=1)  # transformer layers over the regions, at width feat_dim
    joint_layers: int = knob(2, ge=1)  # layers of each joint transformer (TE_1 text, TE_2 image), at width embed_size
    heads: int = knob(4, ge=1)  # attention heads of all three transformers (the reference hard-codes 4)
    feedforward: int = knob(2048, ge=1)  # feed-forward width of all three transformers (reference: 2048)
    visual_dropout: float = knob(0.1, ge=0.0, lt=1.0)  # dropout in the visual transformer (image-model.dropout)
    dropout: float = knob(0.1, ge=0.0, lt=1.0)  # dropout in the joint transformers (model.dropout)
    shared_transformer: bool = False  # True: TE_1 encodes both modalities and TE_2 does not exist
    bert_layers: int = knob(6, ge=1)  # the text backbone is cut to its first N layers (extraction-hidden-layer)
    fine_tune: bool = True  # False: the backbone is frozen (no gradients, always in eval mode)
    backbone: str | None = None  # local BERT-family folder for fresh models; None: the packaged all-MiniLM-L6-v2
    alignment_mode: AlignmentMode = "MrSw"  # how region-word similarities become one image-caption score
    margin: float = knob(0.2, ge=0.0)  # hinge margin of both losses
    max_violation: bool = True  # True: hardest negative only (VSE++); False: sum over all negatives
    alignment_weight: float = knob(1.0, ge=0.0)  # weight of the hinge loss on alignment scores
    matching_weight: float = knob(0.0, ge=0.0)  # weight of the hinge loss on the global (slot 0) vectors

    def check(self) -> list[str]:
        problems = []
        for name in ("feat_dim", "embed_size"):
            if getattr(self, name) % self.heads:
                problems.append(f"{name}: got {getattr(self, name)}, expected a multiple of heads ({self.heads})")
        if self.alignment_weight == 0 and self.matching_weight == 0:
            problems.append("alignment_weight, matching_weight: both are 0, so the loss is always 0; set one > 0")
        return problems


def teran_coco_mrsw() -> TeranConfig:
    """The reference COCO MrSw model (the paper's TERAN).

    Example:
        >>> teran_coco_mrsw().embed_size, teran_coco_mrsw().alignment_mode
        (1024, 'MrSw')
    """
    return TeranConfig()


# (section, key, expected value): reference settings that select a different model than TERAN's.
_REQUIRED_CHOICES = (
    ("text-model", "name", "bert"),
    ("text-model", "layers", 0),
    ("text-model", "pre-extracted", False),
    ("image-model", "name", "bottomup"),
    ("image-model", "pos-encoding", "concat-and-process"),
    ("model", "text-aggregation", "first"),
    ("model", "image-aggregation", "first"),
    ("training", "measure", "dot"),
)


def _lookup(data: Mapping, section: str, key: str, problems: list[str], default: Any = ...) -> Any:
    value = data.get(section, {}).get(key, default) if isinstance(data.get(section, {}), Mapping) else default
    if value is ...:
        problems.append(f"{section}.{key}: missing")
    return value


def _from_reference(data: Mapping, source: str) -> TeranConfig:
    problems: list[str] = []
    for section, key, expected in _REQUIRED_CHOICES:
        value = _lookup(data, section, key, problems)
        if value is not ... and value != expected:
            problems.append(f"{section}.{key}: got {value!r}, but teran implements only {expected!r}")
    for section, key in (("dataset", "pre-extracted-features"), ("model", "exclude-stopwords")):
        if _lookup(data, section, key, problems, default=False):
            problems.append(f"{section}.{key}: got True, but teran implements only False")
    loss_type = str(_lookup(data, "training", "loss-type", problems, default=""))
    if "alignment" not in loss_type and "matching" not in loss_type:
        problems.append(f"training.loss-type: got {loss_type!r}, expected it to name 'alignment' and/or 'matching'")
    fields = {
        "feat_dim": ("image-model", "feat-dim"),
        "visual_layers": ("image-model", "transformer-layers"),
        "visual_dropout": ("image-model", "dropout"),
        "embed_size": ("model", "embed-size"),
        "joint_layers": ("model", "layers"),
        "dropout": ("model", "dropout"),
        "shared_transformer": ("model", "shared-transformer"),
        "bert_layers": ("text-model", "extraction-hidden-layer"),
        "fine_tune": ("text-model", "fine-tune"),
        "alignment_mode": ("training", "alignment-mode"),
        "margin": ("training", "margin"),
        "max_violation": ("training", "max-violation"),
    }
    values = {name: _lookup(data, *where, problems) for name, where in fields.items()}
    if problems:
        raise ConfigError(source, problems)
    values["alignment_weight"] = 1.0 if "alignment" in loss_type else 0.0
    values["matching_weight"] = 1.0 if "matching" in loss_type else 0.0
    return from_dict(TeranConfig, values, source=source)


def load_reference_config(config: Mapping | str, storage=None) -> TeranConfig:
    """Reads a reference TERAN config (its YAML file, or the ``config`` dict of its checkpoints).

    The reference's own key names are read (``image-model.feat-dim``, ``model.embed-size``,
    ``training.alignment-mode`` …). ``training.loss-type`` sets the weights: each of "alignment"
    and "matching" it names gets weight 1. Settings that select a different model than TERAN
    (GRU text encoder, pre-extracted text, stop-word removal, order embeddings …) are refused.

    Args:
        config: the parsed dict, or a path/URI of the YAML file.
        storage: a :class:`teran_core.storage.StorageConfig` for reading an ``s3://`` file.

    Returns:
        The equivalent :class:`TeranConfig` (``backbone`` None: the packaged text backbone).

    Raises:
        ConfigError: every missing key and unsupported setting, one line each.

    Example:
        >>> cfg = load_reference_config({
        ...     "dataset": {"pre-extracted-features": False},
        ...     "text-model": {"name": "bert", "extraction-hidden-layer": 6, "fine-tune": True,
        ...                    "pre-extracted": False, "layers": 0},
        ...     "image-model": {"name": "bottomup", "feat-dim": 2048, "transformer-layers": 4,
        ...                     "dropout": 0.1, "pos-encoding": "concat-and-process"},
        ...     "model": {"embed-size": 1024, "layers": 2, "text-aggregation": "first",
        ...               "image-aggregation": "first", "shared-transformer": True, "dropout": 0.1},
        ...     "training": {"loss-type": "alignment", "alignment-mode": "MwSr", "measure": "dot",
        ...                  "margin": 0.2, "max-violation": True}})
        >>> cfg.shared_transformer, cfg.alignment_mode, cfg.matching_weight
        (True, 'MwSr', 0.0)
    """
    source = "<reference config dict>"
    if isinstance(config, str):
        from teran_core.storage import read_text

        source = config
        config = yaml.safe_load(read_text(config, storage))
    if not isinstance(config, Mapping):
        raise ConfigError(source, [f"top level: got {type(config).__name__}, expected the reference's config mapping"])
    return _from_reference(config, source)

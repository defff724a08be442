"""Which checkpoint encodes, as a small picklable value that Ray ships to every actor and task."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

from teran_core.config import from_dict
from teran_core.data.collate import CaptionCollator
from teran_core.encode.config import ModelSection
from teran_core.model.global_head import GlobalHeadConfig
from teran_core.storage import Location, StorageConfig, resolve

__all__ = ["ModelSpec", "ModelInfo", "GLOBAL_KINDS"]

CONFIG_FILE = "teran_config.json"  # what teran_core.checkpoint.save_checkpoint writes last
# what the `global` column holds: TERAN's own slot-0 token, or a distilled head's vector (docs/distill.md)
GLOBAL_KINDS = ("slot0", "distilled")


@dataclasses.dataclass
class ModelInfo:
    """What the driver and the CPU stage need to know about the model, without its weights."""

    collator: CaptionCollator  # the model's own tokenizer, cut at its backbone's positions
    embed_size: int  # D
    global_kind: str = "slot0"  # one of GLOBAL_KINDS, recorded in the embedding manifest
    global_dim: int | None = None  # G, the global column's width; None: D


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A teran checkpoint folder or a reference ``.pth.tar``.

    Example:
        >>> ModelSpec.from_section(ModelSection(checkpoint="s3://b/teran_coco.pth.tar"), StorageConfig()).format
        'reference'
    """

    checkpoint: Location
    format: str  # "teran" or "reference"

    @classmethod
    def from_section(cls, section: ModelSection, storage: StorageConfig) -> "ModelSpec":
        return cls(resolve(section.checkpoint, storage), section.resolved_format())

    def load(self):
        """The TERAN model in eval mode, on CPU."""
        from teran_core.checkpoint import load_checkpoint, load_reference_checkpoint

        if self.format == "teran":
            return load_checkpoint(self.checkpoint.uri, self.checkpoint.storage)
        return load_reference_checkpoint(self.checkpoint.uri, storage=self.checkpoint.storage)

    def info(self) -> ModelInfo:
        """Tokenizer and D; a teran checkpoint is read without its weights, a reference one is loaded.

        Raises:
            FileNotFoundError: a teran checkpoint folder without ``teran_config.json``.
        """
        if self.format == "reference":  # its config lives inside the weights file; its tokenizer is the packaged one
            model = self.load()
            return ModelInfo(CaptionCollator(None, model.bert_config.max_position_embeddings), model.config.embed_size, "slot0")
        config_file = self.checkpoint.join(CONFIG_FILE)
        if not config_file.exists():
            raise FileNotFoundError(
                f"{self.checkpoint.uri} is not a teran checkpoint: {CONFIG_FILE} is missing; "
                "set model.format: reference for a reference .pth.tar file"
            )
        meta = json.loads(config_file.read_text())
        collator = CaptionCollator(None, int(meta["bert"]["max_position_embeddings"]))
        # CaptionCollator loads a backbone folder (config.json included); a checkpoint keeps only its
        # tokenizer files, so the collator gets the checkpoint's own tokenizer in place of the packaged one
        collator.tokenizer = _checkpoint_tokenizer(self.checkpoint, meta["tokenizer_files"])
        embed_size = int(meta["teran"]["embed_size"])
        if not meta.get("global_head"):
            return ModelInfo(collator, embed_size, "slot0")
        head = from_dict(GlobalHeadConfig, meta["global_head"], source=f"{config_file.uri} global_head")
        return ModelInfo(collator, embed_size, "distilled", head.output_width(embed_size))


def _checkpoint_tokenizer(root: Location, names: list[str]):
    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory() as local:  # transformers reads tokenizers from local folders only
        root.fs.get([root.join(n).path for n in names], local + os.sep)
        return BertTokenizerFast.from_pretrained(local, local_files_only=True)

"""Checkpoints: the reference implementation's ``.pth.tar`` files, and teran's own checkpoint folders.

Reference files are unpickled with ``torch.load(weights_only=True)``: tensors, plain containers and
``argparse.Namespace`` (the file's ``opt`` entry) only, so a file that would run code is refused.
A teran checkpoint is a folder (local or ``s3://``) holding ``model.safetensors``, the tokenizer
files and ``teran_config.json`` (written last: the TeranConfig, the backbone's BertConfig and the
tokenizer file names); it holds no pickled objects and loads on any machine.

Format 2 adds the optional distilled global head (docs/distill.md): its config under ``global_head``
in ``teran_config.json`` (null: none) and its weights in ``model.safetensors`` under ``global_head.``.
Format 1 folders (no head) still load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import tempfile

import torch

from teran_core.config import from_dict
from teran_core.data.tokenizer import load_tokenizer
from teran_core.model.backbone import check_bert_uncased_vocabulary
from teran_core.model.config import TeranConfig, load_reference_config
from teran_core.model.global_head import GlobalHeadConfig, build_global_head
from teran_core.model.teran import TERAN
from teran_core.storage import StorageConfig, resolve

__all__ = ["load_reference_checkpoint", "model_from_reference", "save_checkpoint", "load_checkpoint"]

_REF = "img_txt_enc."
_BERT = _REF + "txt_enc.bert_model."
_RENAMES = (  # reference key prefix -> teran key prefix
    (_BERT, "text.bert."),
    (_REF + "cap_proj.", "text.proj."),
    (_REF + "img_enc.pos_encoding_image.map.", "image.box_encoding."),
    (_REF + "img_enc.transformer_encoder.", "image.transformer."),
    (_REF + "img_proj.", "image.proj."),
    (_REF + "transformer_encoder_1.", "joint_text."),
    (_REF + "transformer_encoder_2.", "joint_image."),
)
_DEAD = (_REF + "txt_enc.map.", _REF + "img_enc.fc.", _BERT + "pooler.")  # computed by the reference, never used
_WORD_ALIAS = _REF + "txt_enc.word_embeddings.weight"  # the same tensor as BERT's word embeddings
_POSITION_IDS = _BERT + "embeddings.position_ids"  # a constant buffer transformers 3.x-4.30 saved
_SHAPE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings", "type_vocab_size")
CONFIG_FILE, WEIGHTS_FILE, FORMAT_VERSION = "teran_config.json", "model.safetensors", 2
READABLE_VERSIONS = (1, 2)  # 1: before the global head existed


def _bert_config(state: dict, override, source: str):
    """The backbone's BertConfig: shapes from the state dict, the rest from ``override`` or BERT's defaults."""
    from transformers import BertConfig

    try:
        word = state[_BERT + "embeddings.word_embeddings.weight"]
        shapes = {
            "vocab_size": word.shape[0], "hidden_size": word.shape[1],
            "intermediate_size": state[_BERT + "encoder.layer.0.intermediate.dense.weight"].shape[0],
            "max_position_embeddings": state[_BERT + "embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": state[_BERT + "embeddings.token_type_embeddings.weight"].shape[0],
        }
    except KeyError as err:
        raise ValueError(f"reference checkpoint {source}: the BERT weight {err.args[0]} is missing") from None
    layers = len({k[len(_BERT + "encoder.layer."):].split(".")[0] for k in state if k.startswith(_BERT + "encoder.layer.")})
    if override is None:  # BERT's convention of 64-wide heads (bert-base: 12); override for other backbones
        return BertConfig(**shapes, num_hidden_layers=layers, num_attention_heads=max(1, shapes["hidden_size"] // 64))
    conflicts = [f"{k}: bert_config {getattr(override, k)}, state dict {v}" for k, v in shapes.items() if getattr(override, k) != v]
    if conflicts:
        raise ValueError(f"reference checkpoint {source}: bert_config disagrees with the weights ({'; '.join(conflicts)})")
    config = BertConfig.from_dict(override.to_dict())
    config.num_hidden_layers = layers
    return config


def _renamed(key: str) -> str | None:
    for old, new in _RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _map_state(state: dict, wanted: dict, source: str) -> dict:
    """Reference keys -> teran keys; raises naming every missing, unexpected or misshapen weight."""
    if _WORD_ALIAS in state and not torch.equal(state[_WORD_ALIAS], state[_BERT + "embeddings.word_embeddings.weight"]):
        raise ValueError(f"reference checkpoint {source}: {_WORD_ALIAS} differs from BERT's word embeddings (it is an alias)")
    mapped, unexpected = {}, []
    for key, value in state.items():
        if key.startswith(_DEAD) or key in (_WORD_ALIAS, _POSITION_IDS):
            continue
        new = _renamed(key)
        if new is None or new not in wanted:
            unexpected.append(key)
        else:
            mapped[new] = value
    missing = sorted(set(wanted) - set(mapped))
    misshapen = [f"{k} {tuple(v.shape)} (expected {tuple(wanted[k].shape)})" for k, v in mapped.items() if v.shape != wanted[k].shape]
    problems = [f"{len(names)} {what}: {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"
                for what, names in (("missing", missing), ("unexpected", sorted(unexpected)), ("misshapen", misshapen)) if names]
    if problems:
        raise ValueError(f"reference checkpoint {source} does not fit its own config: " + "; ".join(problems))
    return mapped


def model_from_reference(config: dict, state: dict, bert_config=None, source: str = "<state dict>", tokenizer=None) -> TERAN:
    """A TERAN in eval mode from a reference ``config`` dict and ``model`` state dict (see :func:`load_reference_checkpoint`)."""
    teran_config = load_reference_config(config)
    bert = _bert_config(state, bert_config, source)
    if bert.num_hidden_layers != teran_config.bert_layers:
        raise ValueError(
            f"reference checkpoint {source}: config says {teran_config.bert_layers} BERT layers, weights hold {bert.num_hidden_layers}"
        )
    if tokenizer is None:  # the reference's own: bert-base-uncased's ids, which the packaged tokenizer shares
        tokenizer, which = load_tokenizer(), "teran's bert-base-uncased tokenizer"
        check_bert_uncased_vocabulary(tokenizer, "the packaged tokenizer")
    else:
        tokenizer, which = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer, "the given tokenizer"
    if bert.vocab_size != len(tokenizer):
        raise ValueError(f"reference checkpoint {source}: BERT vocabulary {bert.vocab_size}, but {which} has {len(tokenizer)}")
    model = TERAN(teran_config, bert_config=bert, tokenizer=tokenizer)
    model.load_state_dict(_map_state(state, model.state_dict(), source), strict=True)
    return model.eval()


def load_reference_checkpoint(path: str, bert_config=None, storage: StorageConfig | None = None, tokenizer=None) -> TERAN:
    """Loads a checkpoint written by the reference TERAN (``checkpoint.pth.tar``, ``model_best_*.pth.tar``).

    The model is built from the checkpoint's own ``config``; the BERT shape (vocabulary, hidden size,
    layers, feed-forward size, positions) comes from the weights. Keys the reference saves but never
    uses (``txt_enc.map``, ``img_enc.fc``, the BERT pooler, the word-embedding alias, ``position_ids``)
    are skipped; any other missing or unexpected key is an error.

    Args:
        path: local path or URI of the ``.pth.tar`` file.
        bert_config: a ``transformers.BertConfig`` for what shapes cannot tell (attention heads,
            activation, eps); None: bert-base's (12 heads for hidden size 768).
        storage: endpoint settings for an ``s3://`` path.
        tokenizer: the tokenizer of the checkpoint's own BERT-family backbone (the one its config's
            ``text-model.pretrain`` names), as a tokenizer or a local model folder; None: the packaged
            tokenizer, which has bert-base-uncased's ids, as the reference's default backbone. Its
            vocabulary size must be the weights'.

    Returns:
        The TERAN in eval mode, with that tokenizer.

    Raises:
        ValueError: the file holds anything beyond tensors, plain containers and argparse.Namespace
            (a pickle that could run code), or its weights do not fit its config.

    Example:
        >>> model = load_reference_checkpoint("teran_coco_MrSw.pth.tar")  # doctest: +SKIP
        >>> model.encode_texts(["a dog on a couch"]).tokens.shape  # doctest: +SKIP
        torch.Size([1, 8, 1024])
    """
    source = resolve(path, storage)
    try:
        with source.open("rb") as f, torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), str(err).splitlines()[0])
        raise ValueError(
            f"refusing to load {source.uri}: it holds objects that only arbitrary unpickling could build ({detail}). "
            "teran loads tensors, plain containers and argparse.Namespace only. If you trust the file, re-save "
            "{'model': ck['model'], 'config': ck['config']} from it in a separate environment"
        ) from None
    if not isinstance(checkpoint, dict) or not {"model", "config"} <= set(checkpoint):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{source.uri} is not a reference TERAN checkpoint: expected 'model' and 'config' entries, found {found}")
    return model_from_reference(checkpoint["config"], checkpoint["model"], bert_config, source.uri, tokenizer)


def save_checkpoint(model: TERAN, uri: str, storage: StorageConfig | None = None) -> None:
    """Writes ``model`` as a self-contained teran checkpoint folder (every file atomically, config last).

    Args:
        model: the model; its tokenizer files are stored too.
        uri: the folder, a local path or ``s3://bucket/prefix``; files of an earlier save are replaced.
        storage: endpoint settings for ``s3://``.

    Example:
        >>> cfg = TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=8, visual_layers=1, joint_layers=1, bert_layers=1)
        >>> folder = tempfile.mkdtemp()
        >>> save_checkpoint(TERAN(cfg), folder)
        >>> load_checkpoint(folder).config == cfg
        True
    """
    from safetensors.torch import save

    root = resolve(uri, storage)
    root.join(CONFIG_FILE).remove()  # readers see no checkpoint, rather than a mixed one, while this runs
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_files = [os.path.basename(p) for p in model.tokenizer.save_pretrained(tmp)]
        for name in tokenizer_files:
            with open(os.path.join(tmp, name), "rb") as f:
                root.join(name).write_bytes(f.read())
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    root.join(WEIGHTS_FILE).write_bytes(save(weights, metadata={"format": "pt"}))
    head = model.global_head
    meta = {"format_version": FORMAT_VERSION, "teran": dataclasses.asdict(model.config), "bert": model.bert_config.to_dict(),
            "tokenizer_files": tokenizer_files, "global_head": head and dataclasses.asdict(head.config)}
    root.join(CONFIG_FILE).write_text(json.dumps(meta, indent=2))


def load_checkpoint(uri: str, storage: StorageConfig | None = None) -> TERAN:
    """Loads a teran checkpoint folder written by :func:`save_checkpoint`; the model is in eval mode.

    A folder with a distilled global head gives a model whose slot 0 is the head's vector.

    Args:
        uri: the checkpoint folder, a local path or ``s3://bucket/prefix``.
        storage: endpoint settings for ``s3://`` (credentials come from the AWS chain).

    Raises:
        FileNotFoundError: the folder has no ``teran_config.json`` (not a checkpoint, or an unfinished save).
        ValueError: an unknown format version, or weights that do not fit the stored config.

    Example:
        >>> model = load_checkpoint("s3://my-bucket/runs/teran-coco/epoch-0003")  # doctest: +SKIP
        >>> model.encode_texts(["a dog on a couch"]).lengths  # doctest: +SKIP
        tensor([8])
    """
    from safetensors.torch import load
    from transformers import BertConfig, BertTokenizerFast

    root = resolve(uri, storage)
    config_file = root.join(CONFIG_FILE)
    if not config_file.exists():
        raise FileNotFoundError(f"{root.uri} is not a teran checkpoint: {CONFIG_FILE} is missing (it is written last)")
    meta = json.loads(config_file.read_text())
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(f"{config_file.uri}: format_version {meta.get('format_version')!r}, expected one of {READABLE_VERSIONS}")
    config = from_dict(TeranConfig, meta["teran"], source=config_file.uri)
    with tempfile.TemporaryDirectory() as tmp:
        for name in meta["tokenizer_files"]:
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(root.join(name).read_bytes())
        tokenizer = BertTokenizerFast.from_pretrained(tmp, local_files_only=True)
    model = TERAN(config, bert_config=BertConfig.from_dict(meta["bert"]), tokenizer=tokenizer)
    if meta.get("global_head"):
        head_config = from_dict(GlobalHeadConfig, meta["global_head"], source=f"{config_file.uri} global_head")
        model.attach_global_head(build_global_head(head_config, config.embed_size))
    try:
        model.load_state_dict(load(root.join(WEIGHTS_FILE).read_bytes()), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{root.uri}: the weights do not fit {CONFIG_FILE}: {err}") from None
    return model.eval()

"""The text backbone's files: a local folder or the offline all-MiniLM-L6-v2 package; never a hub."""

from __future__ import annotations

from pathlib import Path

from teran_core.data.tokenizer import backbone_folder

__all__ = ["load_backbone", "check_bert_uncased_vocabulary"]


# bert-base-uncased's WordPiece layout, which every reference TERAN checkpoint was trained with.
BERT_UNCASED_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
BERT_UNCASED_VOCAB_SIZE = 30522


def check_bert_uncased_vocabulary(tokenizer, source: str = "the text backbone") -> None:
    """Raises unless ``tokenizer`` has bert-base-uncased's ids (special tokens, size, lower-casing).

    Reference checkpoints embed word ids with bert-base-uncased's table, so any other layout
    would silently look up the wrong rows.

    Raises:
        ValueError: naming every id that differs.

    Example:
        >>> from teran_core.data.tokenizer import load_tokenizer
        >>> check_bert_uncased_vocabulary(load_tokenizer())  # the packaged all-MiniLM-L6-v2 vocabulary
    """
    problems = [
        f"{token} has id {tokenizer.convert_tokens_to_ids(token)}, expected {wanted}"
        for token, wanted in BERT_UNCASED_SPECIAL_IDS.items()
        if tokenizer.convert_tokens_to_ids(token) != wanted
    ]
    if len(tokenizer) != BERT_UNCASED_VOCAB_SIZE:
        problems.append(f"the vocabulary has {len(tokenizer)} entries, expected {BERT_UNCASED_VOCAB_SIZE}")
    if tokenizer("A Dog")["input_ids"] != tokenizer("a dog")["input_ids"]:
        problems.append("it is case-sensitive, expected lower-casing")
    if problems:
        raise ValueError(
            f"{source} does not use the bert-base-uncased WordPiece layout that reference checkpoints need: "
            + "; ".join(problems) + ". Use a backbone folder with bert-base-uncased's vocab.txt"
        )


def _read_weights(path: str) -> dict:
    safetensors_file, torch_file = Path(path, "model.safetensors"), Path(path, "pytorch_model.bin")
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    if torch_file.is_file():
        import torch

        return torch.load(torch_file, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"text backbone folder {path} has neither model.safetensors nor pytorch_model.bin")


def load_backbone(path: str | None = None, *, layers: int):
    """The backbone's BertModel cut to its first ``layers`` layers, pretrained weights loaded strictly.

    The pooler and layers past ``layers`` are dropped; a weight missing for a kept layer is an error
    (no silent random initialisation).

    Args:
        path: a Hugging Face BERT-family folder; None for the packaged all-MiniLM-L6-v2.
        layers: how many encoder layers to keep (the reference keeps 6).

    Raises:
        FileNotFoundError: no config or weights in the folder.
        ValueError: ``layers`` exceeds the backbone's depth, or weights are missing or misshapen.

    Example:
        >>> bert = load_backbone(layers=2)
        >>> bert.config.num_hidden_layers, bert.config.hidden_size
        (2, 384)
    """
    from transformers import BertConfig, BertModel

    path = backbone_folder(path)
    config = BertConfig.from_pretrained(path, local_files_only=True)
    if layers > config.num_hidden_layers:
        raise ValueError(f"text backbone {path} has {config.num_hidden_layers} layers; cannot keep {layers}")
    config.num_hidden_layers = layers
    model = BertModel(config, add_pooling_layer=False)
    wanted = model.state_dict()
    weights = {k.removeprefix("bert."): v for k, v in _read_weights(path).items()}
    weights = {k: v for k, v in weights.items() if k in wanted}
    missing = sorted(set(wanted) - set(weights))
    if missing:
        raise ValueError(f"text backbone {path} lacks {len(missing)} weight(s) of its first {layers} layers: {missing[:5]}")
    model.load_state_dict(weights, strict=True)
    return model

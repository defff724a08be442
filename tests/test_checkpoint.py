"""Checkpoints: unsafe reference files are refused; teran checkpoint folders round-trip on local disk and S3."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig

from teran_core import TERAN, TeranConfig, load_checkpoint, load_reference_checkpoint, save_checkpoint

TINY = TeranConfig(feat_dim=16, embed_size=8, visual_layers=1, joint_layers=1, heads=2, feedforward=16, bert_layers=1)


class RunsAShellCommand:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, legacy_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"model": {}, "config": {}, "opt": RunsAShellCommand(f"touch {marker}")}, path,
               _use_new_zipfile_serialization=not legacy_format)
    with pytest.raises(ValueError, match=r"refusing to load .*checkpoint\.pth\.tar.*GLOBAL posix\.system"):
        load_reference_checkpoint(str(path))
    assert not marker.exists()


def test_a_file_that_is_not_a_reference_checkpoint_is_named(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match=r"weights\.pth is not a reference TERAN checkpoint: .*found \['state_dict'\]"):
        load_reference_checkpoint(str(path))


def encode(model):
    torch.manual_seed(3)
    with torch.no_grad():
        img = model.encode_images(torch.randn(2, 3, 16), torch.rand(2, 3, 4), torch.tensor([3, 1]))
        cap = model.encode_texts(["a cat on a mat.", "two dogs"])
    return img.tokens, cap.tokens


def assert_same_model(loaded, model):
    assert loaded.config == model.config and not loaded.training
    assert loaded.bert_config.to_dict() == model.bert_config.to_dict()
    for ours, theirs in zip(encode(loaded), encode(model)):
        assert torch.equal(ours, theirs)


def test_teran_checkpoint_folder_round_trip(tmp_path):
    model = TERAN(TINY).eval()
    save_checkpoint(model, str(tmp_path / "ckpt"))
    files = sorted(os.listdir(tmp_path / "ckpt"))
    assert files == ["model.safetensors", "teran_config.json", "tokenizer.json", "tokenizer_config.json"]
    meta = json.loads((tmp_path / "ckpt" / "teran_config.json").read_text())
    assert meta["format_version"] == 2 and meta["teran"]["embed_size"] == 8 and meta["bert"]["hidden_size"] == 384
    assert set(load_file(tmp_path / "ckpt" / "model.safetensors")) == set(model.state_dict())  # plain tensors, no pickle
    assert_same_model(load_checkpoint(str(tmp_path / "ckpt")), model)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_teran_checkpoint_round_trip_on_any_storage(storage_root):
    # A backbone described only by its BertConfig (as after loading a reference checkpoint) must survive too.
    model = TERAN(TINY, bert_config=BertConfig(hidden_size=12, num_hidden_layers=1, num_attention_heads=3, intermediate_size=20)).eval()
    save_checkpoint(model, storage_root.join("ckpt").uri, storage_root.storage)
    assert storage_root.join("ckpt").list() == ["model.safetensors", "teran_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert_same_model(load_checkpoint(storage_root.join("ckpt").uri, storage_root.storage), model)


def test_an_unfinished_or_foreign_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a teran checkpoint: teran_config.json is missing"):
        load_checkpoint(str(tmp_path))


def test_weights_that_do_not_fit_the_stored_config_are_refused(tmp_path):
    save_checkpoint(TERAN(TINY), str(tmp_path))
    meta = json.loads((tmp_path / "teran_config.json").read_text())
    meta["teran"]["embed_size"] = 16
    (tmp_path / "teran_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="the weights do not fit teran_config.json"):
        load_checkpoint(str(tmp_path))

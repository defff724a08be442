"""TeranConfig defaults and the reader of the reference implementation's YAML configs."""

import dataclasses

import pytest

from teran_core import ConfigError, TeranConfig
from teran_core.config import from_dict
from teran_core.model import load_reference_config, teran_coco_mrsw

# The reference's configs/teran_coco_MrSw.yaml, key by key (github.com/mesnico/TERAN).
REFERENCE_COCO_MRSW = """
dataset: {name: coco, data: data, restval: true, pre-extracted-features: false}
text-model: {name: bert, pretrain: bert-base-uncased, word-dim: 768, extraction-hidden-layer: 6,
             fine-tune: true, pre-extracted: false, layers: 0, dropout: 0.1}
image-model: {name: bottomup, pre-extracted-features-root: data/coco/features_36, transformer-layers: 4,
              dropout: 0.1, pos-encoding: concat-and-process, crop-size: 224, fine-tune: false, feat-dim: 2048, norm: true}
model: {name: teran, embed-size: 1024, text-aggregation: first, image-aggregation: first, layers: 2,
        exclude-stopwords: false, shared-transformer: false, dropout: 0.1}
training: {lr: 0.00001, grad-clip: 2.0, max-violation: true, loss-type: alignment, alignment-mode: MrSw,
           measure: dot, margin: 0.2, bs: 40, scheduler: steplr, gamma: 0.1, step-size: 20, warmup: null}
"""


def test_defaults_are_the_reference_coco_config(tmp_path):
    path = tmp_path / "teran_coco_MrSw.yaml"
    path.write_text(REFERENCE_COCO_MRSW)
    assert load_reference_config(str(path)) == TeranConfig() == teran_coco_mrsw()
    cfg = TeranConfig()
    assert (cfg.feat_dim, cfg.embed_size, cfg.visual_layers, cfg.joint_layers, cfg.heads, cfg.feedforward) == (2048, 1024, 4, 2, 4, 2048)
    assert (cfg.bert_layers, cfg.margin, cfg.max_violation, cfg.alignment_weight, cfg.matching_weight) == (6, 0.2, True, 1.0, 0.0)


def test_loss_type_sets_the_weights_and_other_keys_map_across(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text(REFERENCE_COCO_MRSW.replace("loss-type: alignment", "loss-type: alignment-matching")
                    .replace("alignment-mode: MrSw", "alignment-mode: scan-sentences")
                    .replace("shared-transformer: false", "shared-transformer: true").replace("feat-dim: 2048", "feat-dim: 1024"))
    cfg = load_reference_config(str(path))
    assert (cfg.alignment_weight, cfg.matching_weight) == (1.0, 1.0)
    assert (cfg.alignment_mode, cfg.shared_transformer, cfg.feat_dim) == ("scan-sentences", True, 1024)


def test_every_unsupported_or_missing_setting_is_reported_at_once(tmp_path):
    path = tmp_path / "gru.yaml"
    path.write_text(REFERENCE_COCO_MRSW.replace("name: bert", "name: gru").replace("measure: dot", "measure: order")
                    .replace("margin: 0.2, ", "").replace("exclude-stopwords: false", "exclude-stopwords: true"))
    with pytest.raises(ConfigError) as err:
        load_reference_config(str(path))
    assert err.value.problems == [
        "text-model.name: got 'gru', but teran implements only 'bert'",
        "training.measure: got 'order', but teran implements only 'dot'",
        "model.exclude-stopwords: got True, but teran implements only False",
        "training.margin: missing",
    ]


def test_teran_config_is_strict():
    with pytest.raises(ConfigError, match="feat_dim: got 30, expected a multiple of heads"):
        from_dict(TeranConfig, {"feat_dim": 30})
    with pytest.raises(ConfigError, match="alignment_mode: got 'max'"):
        from_dict(TeranConfig, {"alignment_mode": "max"})
    with pytest.raises(ConfigError, match="embed_dim: unknown key"):
        from_dict(TeranConfig, {"embed_dim": 8})
    assert from_dict(TeranConfig, dataclasses.asdict(TeranConfig(margin=0.1))) == TeranConfig(margin=0.1)

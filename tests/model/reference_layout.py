"""Test helpers: reference-format TERAN checkpoints and a naive re-statement of the reference forward pass.

Everything here is written from the reference implementation's key names and forward pass (github.com/mesnico/TERAN,
``models/teran.py``) on purpose without using
teran's modules, so comparing the two checks teran against the facts, not against itself.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

BERT = "img_txt_enc.txt_enc.bert_model."


def _transformer_shapes(prefix: str, width: int, feedforward: int, layers: int) -> list[tuple[str, tuple]]:
    out = []
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        out += [
            (p + "self_attn.in_proj_weight", (3 * width, width)), (p + "self_attn.in_proj_bias", (3 * width,)),
            (p + "self_attn.out_proj.weight", (width, width)), (p + "self_attn.out_proj.bias", (width,)),
            (p + "linear1.weight", (feedforward, width)), (p + "linear1.bias", (feedforward,)),
            (p + "linear2.weight", (width, feedforward)), (p + "linear2.bias", (width,)),
            (p + "norm1.weight", (width,)), (p + "norm1.bias", (width,)),
            (p + "norm2.weight", (width,)), (p + "norm2.bias", (width,)),
        ]
    return out


def reference_shapes(cfg, bert) -> list[tuple[str, tuple]]:
    """(key, shape) of the reference TERAN's state dict, in its order, for a TeranConfig and BertConfig."""
    H, V, FF, D, Fd = bert.hidden_size, bert.vocab_size, bert.intermediate_size, cfg.embed_size, cfg.feat_dim
    out = [
        (BERT + "embeddings.word_embeddings.weight", (V, H)),
        (BERT + "embeddings.position_embeddings.weight", (bert.max_position_embeddings, H)),
        (BERT + "embeddings.token_type_embeddings.weight", (bert.type_vocab_size, H)),
        (BERT + "embeddings.LayerNorm.weight", (H,)), (BERT + "embeddings.LayerNorm.bias", (H,)),
    ]
    for i in range(bert.num_hidden_layers):
        p = f"{BERT}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            out += [(f"{p}attention.self.{name}.weight", (H, H)), (f"{p}attention.self.{name}.bias", (H,))]
        out += [
            (p + "attention.output.dense.weight", (H, H)), (p + "attention.output.dense.bias", (H,)),
            (p + "attention.output.LayerNorm.weight", (H,)), (p + "attention.output.LayerNorm.bias", (H,)),
            (p + "intermediate.dense.weight", (FF, H)), (p + "intermediate.dense.bias", (FF,)),
            (p + "output.dense.weight", (H, FF)), (p + "output.dense.bias", (H,)),
            (p + "output.LayerNorm.weight", (H,)), (p + "output.LayerNorm.bias", (H,)),
        ]
    out += [
        (BERT + "pooler.dense.weight", (H, H)), (BERT + "pooler.dense.bias", (H,)),
        ("img_txt_enc.txt_enc.word_embeddings.weight", (V, H)),
        ("img_txt_enc.txt_enc.map.weight", (D, H)), ("img_txt_enc.txt_enc.map.bias", (D,)),
    ]
    out += _transformer_shapes("img_txt_enc.img_enc.transformer_encoder.", Fd, cfg.feedforward, cfg.visual_layers)
    out += [
        ("img_txt_enc.img_enc.pos_encoding_image.map.0.weight", (Fd, Fd + 5)),
        ("img_txt_enc.img_enc.pos_encoding_image.map.0.bias", (Fd,)),
        ("img_txt_enc.img_enc.pos_encoding_image.map.2.weight", (Fd, Fd)),
        ("img_txt_enc.img_enc.pos_encoding_image.map.2.bias", (Fd,)),
        ("img_txt_enc.img_enc.fc.weight", (D, Fd)), ("img_txt_enc.img_enc.fc.bias", (D,)),
        ("img_txt_enc.img_proj.weight", (D, Fd)), ("img_txt_enc.img_proj.bias", (D,)),
        ("img_txt_enc.cap_proj.weight", (D, H)), ("img_txt_enc.cap_proj.bias", (D,)),
    ]
    out += _transformer_shapes("img_txt_enc.transformer_encoder_1.", D, cfg.feedforward, cfg.joint_layers)
    if not cfg.shared_transformer:
        out += _transformer_shapes("img_txt_enc.transformer_encoder_2.", D, cfg.feedforward, cfg.joint_layers)
    return out


def reference_state_dict(cfg, bert, fill=None) -> dict[str, torch.Tensor]:
    """A state dict in the reference layout; random weights (LayerNorm gains near 1) unless ``fill`` is given."""
    state = {}
    for key, shape in reference_shapes(cfg, bert):
        if key == "img_txt_enc.txt_enc.word_embeddings.weight":  # an alias: the very same tensor
            state[key] = state[BERT + "embeddings.word_embeddings.weight"]
        elif fill is not None:
            state[key] = torch.full(shape, fill)
        elif ("LayerNorm.weight" in key or ".norm" in key) and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape)
        else:
            state[key] = 0.2 * torch.randn(shape)
    return state


def reference_config_dict(cfg, loss_type: str = "alignment") -> dict:
    """The reference YAML config (its own key names) for a TeranConfig."""
    return {
        "dataset": {"name": "coco", "data": "data", "restval": True, "pre-extracted-features": False},
        "text-model": {"name": "bert", "pretrain": "bert-base-uncased", "word-dim": 768, "extraction-hidden-layer": cfg.bert_layers,
                       "fine-tune": cfg.fine_tune, "pre-extracted": False, "layers": 0, "dropout": 0.1},
        "image-model": {"name": "bottomup", "pre-extracted-features-root": "data/coco/features_36", "transformer-layers": cfg.visual_layers,
                        "dropout": cfg.visual_dropout, "pos-encoding": "concat-and-process", "crop-size": 224, "fine-tune": False,
                        "feat-dim": cfg.feat_dim, "norm": True},
        "model": {"name": "teran", "embed-size": cfg.embed_size, "text-aggregation": "first", "image-aggregation": "first",
                  "layers": cfg.joint_layers, "exclude-stopwords": False, "shared-transformer": cfg.shared_transformer,
                  "dropout": cfg.dropout},
        "training": {"lr": 1e-5, "grad-clip": 2.0, "max-violation": cfg.max_violation, "loss-type": loss_type,
                     "alignment-mode": cfg.alignment_mode, "measure": "dot", "margin": cfg.margin, "bs": 40,
                     "scheduler": "steplr", "gamma": 0.1, "step-size": 20, "warmup": None, "warmup-period": 1000},
    }


def write_reference_checkpoint(path, config: dict, state: dict, legacy_format: bool = False) -> None:
    """Saves the dict ``train.py:save_checkpoint`` writes: epoch, model, optimizer, scheduler, opt, config, Eiters."""
    params = [torch.nn.Parameter(torch.randn(3))]
    optimizer = torch.optim.Adam(params, lr=1e-5)
    params[0].sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.1)
    opt = argparse.Namespace(config="configs/teran_coco_MrSw.yaml", num_epochs=30, logger_name="runs/test",
                             val_step=500, workers=10, resume="", load_model="", lr_update=15)
    torch.save({"epoch": 3, "model": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "opt": opt, "config": config, "Eiters": 1234}, path, _use_new_zipfile_serialization=not legacy_format)


# --- the reference forward pass, restated from the facts (batch-first, plain tensor ops) -------------
def _linear(x, sd, prefix):
    return x @ sd[prefix + "weight"].T + sd[prefix + "bias"]


def _attention(q, k, v, pad, heads):
    """Scaled dot-product attention over keys not marked in pad (B, L); heads are contiguous slices."""
    B, L, W = q.shape
    split = lambda t: t.view(B, L, heads, W // heads).transpose(1, 2)  # (B, h, L, W/h)
    logits = split(q) @ split(k).transpose(2, 3) / math.sqrt(W // heads)
    weights = torch.softmax(logits.masked_fill(pad[:, None, None, :], float("-inf")), dim=3)
    return (weights @ split(v)).transpose(1, 2).reshape(B, L, W)


def _transformer(x, pad, sd, prefix, layers, heads):
    """nn.TransformerEncoder as the reference uses it: post-norm, ReLU, LayerNorm eps 1e-5."""
    W = x.shape[2]
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        q, k, v = _linear(x, sd, p + "self_attn.in_proj_").split(W, dim=2)  # rows are [q; k; v]
        x = F.layer_norm(x + _linear(_attention(q, k, v, pad, heads), sd, p + "self_attn.out_proj."), (W,),
                         sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-5)
        ff = _linear(torch.relu(_linear(x, sd, p + "linear1.")), sd, p + "linear2.")
        x = F.layer_norm(x + ff, (W,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-5)
    return x


def reference_images(sd, cfg, features, boxes, n_regions):
    """Collate (slot 0 = zero feature, zero box) -> box MLP -> visual TE -> img_proj -> TE_2 -> normalise."""
    B, R, Fd = features.shape
    feats, bxs = torch.zeros(B, R + 1, Fd), torch.zeros(B, R + 1, 4)
    for b in range(B):
        n = int(n_regions[b])
        feats[b, 1:n + 1], bxs[b, 1:n + 1] = features[b, :n], boxes[b, :n]
    pad = torch.arange(R + 1)[None, :] >= (n_regions + 1)[:, None]
    area = (bxs[..., 2] - bxs[..., 0]) * (bxs[..., 3] - bxs[..., 1])
    x = torch.cat([feats, bxs, area[..., None]], dim=2)
    x = _linear(torch.relu(_linear(x, sd, "img_txt_enc.img_enc.pos_encoding_image.map.0.")), sd,
                "img_txt_enc.img_enc.pos_encoding_image.map.2.")
    x = _transformer(x, pad, sd, "img_txt_enc.img_enc.transformer_encoder.", cfg.visual_layers, cfg.heads)
    x = _linear(x, sd, "img_txt_enc.img_proj.")
    te = "img_txt_enc.transformer_encoder_1." if cfg.shared_transformer else "img_txt_enc.transformer_encoder_2."
    return F.normalize(_transformer(x, pad, sd, te, cfg.joint_layers, cfg.heads), dim=2)


def reference_bert(sd, bert, input_ids, lengths):
    """BERT's first layers (absolute positions, token type 0, GELU, LayerNorm eps 1e-12); last layer's states."""
    B, T = input_ids.shape
    H, eps = bert.hidden_size, bert.layer_norm_eps
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    e = BERT + "embeddings."
    x = sd[e + "word_embeddings.weight"][input_ids] + sd[e + "position_embeddings.weight"][:T] + sd[e + "token_type_embeddings.weight"][0]
    x = F.layer_norm(x, (H,), sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"], eps)
    for i in range(bert.num_hidden_layers):
        p = f"{BERT}encoder.layer.{i}."
        q, k, v = (_linear(x, sd, f"{p}attention.self.{n}.") for n in ("query", "key", "value"))
        a = _linear(_attention(q, k, v, pad, bert.num_attention_heads), sd, p + "attention.output.dense.")
        x = F.layer_norm(x + a, (H,), sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"], eps)
        ff = _linear(F.gelu(_linear(x, sd, p + "intermediate.dense.")), sd, p + "output.dense.")
        x = F.layer_norm(x + ff, (H,), sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"], eps)
    return x


def reference_captions(sd, cfg, bert, input_ids, lengths):
    """BERT -> cap_proj -> TE_1 -> normalise."""
    pad = torch.arange(input_ids.shape[1])[None, :] >= lengths[:, None]
    x = _linear(reference_bert(sd, bert, input_ids, lengths), sd, "img_txt_enc.cap_proj.")
    return F.normalize(_transformer(x, pad, sd, "img_txt_enc.transformer_encoder_1.", cfg.joint_layers, cfg.heads), dim=2)

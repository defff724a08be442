"""The training step without Ray: the loss goes down, the cache is exact, the state reloads safely."""

import torch

from teran_core.data import CaptionCollator, DatasetManifest, read_shard
from teran_core.losses import TeranLoss
from teran_core.model.teran import TERAN
from teran_core.train.loop import DevSet, HiddenCache, PairEncoder, train_step, validate
from teran_core.train.pairs import CaptionIndex, PairBuilder, collate_pairs
from teran_core.train.state import TrainState, load_train_state, save_train_state


def _batches(dataset, size=16):
    manifest = DatasetManifest.load(dataset)
    pairs = PairBuilder(CaptionIndex.build(manifest, "train", CaptionCollator()))(read_shard(manifest, "images", 0))
    return [collate_pairs(pairs.slice(s, size)) for s in range(0, size * 4, size)]


def test_loss_decreases_over_a_few_steps(tiny_dataset, tiny_model_config):
    model = TERAN(tiny_model_config).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    encoder, loss_fn, batches = PairEncoder(model, HiddenCache(64)), TeranLoss(tiny_model_config), _batches(tiny_dataset)
    first = [train_step(encoder, loss_fn, b, optimizer, 3e-3, 2.0)["total"] for b in batches]
    for _ in range(6):
        last = [train_step(encoder, loss_fn, b, optimizer, 3e-3, 2.0)["total"] for b in batches]
    assert sum(last) < 0.7 * sum(first), (first, last)


def test_frozen_backbone_gets_no_gradient_and_cache_is_exact(tiny_dataset, tiny_model_config):
    model = TERAN(tiny_model_config).train()
    batch = _batches(tiny_dataset)[0]
    cache = HiddenCache(64)
    cached = PairEncoder(model, cache)(batch)[1]
    again = PairEncoder(model, cache)(batch)[1]  # every caption now comes from the cache
    direct = PairEncoder(model, None)(batch)[1]
    assert len(cache.entries) == len(set(batch["caption_id"]))
    valid = torch.arange(direct.tokens.shape[1])[None, :] < direct.lengths[:, None]  # padding slots are ignored
    torch.testing.assert_close(again.tokens[valid], direct.tokens[valid], atol=2e-3, rtol=0)  # float16 cache
    torch.testing.assert_close(cached.tokens[valid], direct.tokens[valid], atol=1e-5, rtol=0)
    TeranLoss(tiny_model_config)(*PairEncoder(model, cache)(batch))["total"].backward()
    assert all(p.grad is None for p in model.text.bert.parameters())
    assert model.image.proj.weight.grad is not None


def test_cache_respects_its_budget(tiny_dataset, tiny_model_config):
    model = TERAN(tiny_model_config)
    cache = HiddenCache(0)
    out = PairEncoder(model, cache)(_batches(tiny_dataset)[0])[1]
    assert cache.entries == {} and out.tokens.shape[0] == 16


def test_validate_and_state_round_trip(tiny_dataset, tiny_model_config, tmp_path):
    manifest = DatasetManifest.load(tiny_dataset)
    dev = DevSet.load(manifest, "dev", 8, CaptionCollator())
    assert len(dev.caption_image_index) == 40 and dev.caption_image_index.max() == 7
    model = TERAN(tiny_model_config)
    metrics = validate(model, dev)
    assert set(metrics) >= {"rsum", "t2i_r10", "i2t_r1"} and 0 <= metrics["t2i_r10"] <= 100
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    train_step(PairEncoder(model), TeranLoss(tiny_model_config), _batches(tiny_dataset)[0], optimizer, 1e-3, 2.0)
    save_train_state(str(tmp_path), model, TrainState(epoch=3, step=12, history=[metrics], optimizer=optimizer.state_dict()))
    loaded, state = load_train_state(str(tmp_path))
    assert (state.epoch, state.step, state.history) == (3, 12, [metrics])
    fresh = torch.optim.Adam([p for p in loaded.parameters() if p.requires_grad])
    fresh.load_state_dict(state.optimizer)
    assert validate(loaded, dev) == validate(model, dev)

"""A grounded synthetic dataset: captions that really describe their regions, with hard negatives."""

from teran_core.data.synth.captions import Caption, describe
from teran_core.data.synth.generate import finish_synthetic, generate_dataset, generate_shard, write_synthetic_shard
from teran_core.data.synth.scene import Scene, make_scene
from teran_core.data.synth.spec import SynthConfig
from teran_core.data.synth.vocabulary import SyntheticWorld

__all__ = [
    "Caption", "Scene", "SynthConfig", "SyntheticWorld", "describe", "finish_synthetic", "generate_dataset",
    "generate_shard", "make_scene", "write_synthetic_shard",
]

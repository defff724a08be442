"""The synthetic world: object, attribute and background words, and one prototype vector per word.

Every word is a single WordPiece of the packaged uncased tokenizer (a test checks), so a caption's
words map one to one onto the tokens TERAN aligns with regions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OBJECTS", "ATTRIBUTES", "ATTRIBUTE_FAMILIES", "BACKGROUNDS", "SyntheticWorld"]

OBJECTS = (
    "car", "dog", "cat", "table", "chair", "bottle", "cup", "bowl", "plate", "knife", "fork", "spoon",
    "bench", "bicycle", "truck", "bus", "boat", "train", "horse", "cow", "sheep", "bird", "elephant", "bear",
    "umbrella", "bag", "ball", "kite", "vase", "clock", "book", "lamp", "phone", "laptop", "keyboard", "television",
    "sofa", "bed", "door", "window", "sign", "pizza", "cake", "apple", "banana", "sandwich", "hat", "shoe",
    "shirt", "jacket", "box", "basket", "bucket", "guitar", "piano", "drum", "flag", "flower", "plant", "pillow",
    "mirror", "towel", "candle", "ladder", "helmet", "duck",
)
ATTRIBUTE_FAMILIES = {
    "colour": ("red", "blue", "green", "yellow", "black", "white", "brown", "pink"),
    "size": ("small", "large", "huge"),
    "material": ("wooden", "metal", "plastic"),
}
ATTRIBUTES = tuple(word for family in ATTRIBUTE_FAMILIES.values() for word in family)
BACKGROUNDS = ("sky", "grass", "wall", "floor", "road", "water", "sand", "snow")

PROTOTYPE_STREAM = 0  # random streams are keyed (seed, stream, ...) so each part is reproducible alone


class SyntheticWorld:
    """The vocabulary and the prototype of every word, fixed by ``seed`` and ``dim``.

    A region's feature is ``object_prototypes[class] + attribute_prototypes[attribute] + noise`` (or
    ``background_prototypes[kind] + noise`` for background). Prototype entries are N(0, 1) draws.

    Args:
        seed: the dataset seed.
        dim: the feature dimension F.

    Example:
        >>> world = SyntheticWorld(seed=0, dim=16)
        >>> len(world.objects) >= 60, len(world.attributes) >= 12, world.object_prototypes.shape
        (True, True, (66, 16))
        >>> world.object_index["car"], world.attribute_index["red"]
        (0, 0)
    """

    def __init__(self, seed: int, dim: int):
        self.seed, self.dim = seed, dim
        self.objects, self.attributes, self.backgrounds = OBJECTS, ATTRIBUTES, BACKGROUNDS
        self.object_index = {w: i for i, w in enumerate(OBJECTS)}
        self.attribute_index = {w: i for i, w in enumerate(ATTRIBUTES)}
        self.background_index = {w: i for i, w in enumerate(BACKGROUNDS)}
        rng = np.random.default_rng([seed, PROTOTYPE_STREAM])
        self.object_prototypes = rng.standard_normal((len(OBJECTS), dim), dtype=np.float32)  # (C, F)
        self.attribute_prototypes = rng.standard_normal((len(ATTRIBUTES), dim), dtype=np.float32)  # (A, F)
        self.background_prototypes = rng.standard_normal((len(BACKGROUNDS), dim), dtype=np.float32)  # (G, F)

    def region_prototypes(self, kinds: np.ndarray, classes: np.ndarray, attributes: np.ndarray) -> np.ndarray:
        """Noise-free features of regions: (N,) kinds (0 object, 1 background), class/background and attribute ids -> (N, F)."""
        obj = kinds == 0
        out = np.empty((len(kinds), self.dim), np.float32)
        out[obj] = self.object_prototypes[classes[obj]] + self.attribute_prototypes[attributes[obj]]
        out[~obj] = self.background_prototypes[classes[~obj]]
        return out

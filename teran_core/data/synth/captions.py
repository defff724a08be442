"""Five grounded English captions per synthetic image, from varied templates.

Each caption mentions 1-3 of the image's objects, always with the attribute that object has in this
image; every relation word ("to the left of", "above", "next to", ...) is read off the objects' grid
cells, and a background phrase ("on the grass") names one of the image's background kinds.
"""

from __future__ import annotations

import dataclasses
import string

import numpy as np

from teran_core.data.synth.scene import Scene
from teran_core.data.synth.spec import CAPTIONS_PER_IMAGE
from teran_core.data.synth.vocabulary import BACKGROUNDS

__all__ = ["Caption", "describe", "MENTION_PROBABILITIES"]

CAPTION_STREAM = 3
MENTION_PROBABILITIES = (0.15, 0.5, 0.35)  # captions mentioning 1, 2 or 3 objects
BACKGROUND_PHRASES = dict(zip(BACKGROUNDS, (
    "under the sky", "on the grass", "in front of a wall", "on the floor", "on the road", "near the water",
    "on the sand", "in the snow",
)))
# {a} an object with its article, {the_a} with "the", {noun_a} the bare noun; {ab} how a lies relative to b.
TEMPLATES = {
    1: ("{a} in the picture.", "there is {a} in this image.", "a close-up photo of {a}.", "{a} {bg}.",
        "an image showing {a}."),
    2: ("{a} {ab} {b}.", "{the_a} is {ab} {the_b}.", "a photo of {a} {ab} {b}.", "there is {a} {ab} {b} {bg}.",
        "{b} with {a} {ab} it.", "{a} and {b}.", "a picture with {a} and {b} in it."),
    3: ("{a}, {b} and {c}.", "{a} {ab} {b}, and {c} {cb} the {noun_b}.", "a scene with {a}, {b} and {c} {bg}.",
        "{the_a} is {ab} {the_b} while {c} is {ca} {the_a}.", "in this picture {a} is {ab} {b} and {c} is {ca} the {noun_a}."),
}
RELATION_FIELDS = {"ab": (0, 1), "cb": (2, 1), "ca": (2, 0)}


@dataclasses.dataclass
class Caption:
    """A caption and what it claims: the objects it mentions and the relations it states."""

    text: str
    mentions: list[int]  # object indices in the scene, in the order a, b, c
    relations: list[tuple[int, str, int]]  # (object, phrase, object): "object lies <phrase> object"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _caption(scene: Scene, objects: list[int], rng: np.random.Generator) -> Caption:
    template = TEMPLATES[len(objects)][int(rng.integers(len(TEMPLATES[len(objects)])))]
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values: dict[str, str] = {}
    for slot, k in zip("abc", objects):
        attribute, noun = scene.describe_object(k)
        values.update({slot: f"{_article(attribute)} {attribute} {noun}", f"the_{slot}": f"the {attribute} {noun}", f"noun_{slot}": noun})
    relations = []
    for name in sorted(fields & RELATION_FIELDS.keys()):
        a, b = (objects[i] for i in RELATION_FIELDS[name])
        values[name] = scene.relation(a, b, rng)
        relations.append((a, values[name], b))
    if "bg" in fields:
        values["bg"] = BACKGROUND_PHRASES[BACKGROUNDS[int(rng.choice(scene.backgrounds))]]
    text = template.format(**values)
    return Caption(text=text[0].upper() + text[1:], mentions=list(objects), relations=relations)


def describe(scene: Scene, seed: int) -> list[Caption]:
    """The five captions of ``scene`` (a pure function of the seed and the scene).

    Example:
        >>> from teran_core.data.synth.scene import make_scene
        >>> from teran_core.data.synth.spec import SynthConfig
        >>> captions = describe(make_scene(SynthConfig(), 0), seed=0)
        >>> len(captions), all(1 <= len(c.mentions) <= 3 for c in captions)
        (5, True)
    """
    rng = np.random.default_rng([seed, CAPTION_STREAM, scene.index])
    n = len(scene.objects)
    captions = []
    for _ in range(CAPTIONS_PER_IMAGE):
        count = min(n, 1 + int(rng.choice(3, p=MENTION_PROBABILITIES)))
        objects = [int(k) for k in rng.choice(n, count, replace=False)]
        captions.append(_caption(scene, objects, rng))
    return captions

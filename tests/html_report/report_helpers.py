"""A demo-sized evaluation, in process and in seconds: a synthetic test split, embeddings grounded in its
scenes, an index, recall with a K' sweep, and the gallery and alignments of report.html.

The embeddings stand in for a trained TERAN: a region token is its feature (object + attribute
prototype + noise, from the dataset itself), a word piece's token is the prototype of its word
(another seeded vector for words the synthetic world has no prototype for), so "red" aligns to the
red object's region. Captions have the slots [CLS] pieces [SEP] of the real tokenizer.
"""

from __future__ import annotations

import zlib

import numpy as np

from teran_core.data import load_split
from teran_core.data.collate import collate_images
from teran_core.data.manifest import DatasetManifest
from teran_core.data.readers import read_shard
from teran_core.data.synth import SynthConfig, SyntheticWorld, generate_dataset
from teran_core.data.tokenizer import load_tokenizer
from teran_core.embedding_set import write_embedding_side
from teran_core.html_report.examples import build_examples
from teran_core.html_report.scenes import dataset_metadata
from teran_core.index.catalog import TeranIndex
from teran_core.index.config import IndexSection
from teran_core.index.run import build_index
from teran_core.recall import CollectionEvaluator, EvalSection, evaluate_collection, evaluate_protocol, load_ground_truth, local_mapper
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import Location

DIM = 32
K_SWEEP = [10, 20, 50, 100]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _word_vector(world: SyntheticWorld, word: str) -> np.ndarray:
    for names, prototypes in ((world.object_index, world.object_prototypes), (world.attribute_index, world.attribute_prototypes),
                              (world.background_index, world.background_prototypes)):
        if word in names:
            return prototypes[names[word]]
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM).astype(np.float32)


def grounded_embeddings(dataset: Location, out: Location, seed: int = 0) -> None:
    """Writes images/ and captions/ embedding sides of the dataset's test split (see the module docstring)."""
    manifest = DatasetManifest.load(dataset)
    world = SyntheticWorld(seed, DIM)
    image_ids, caption_ids, _ = load_split(dataset.uri, "test")
    images = collate_images(read_shard(manifest, "images", 0))
    keep = np.isin(images["image_id"], image_ids)
    n, r = int(keep.sum()), images["features"].shape[1]
    tokens = np.zeros((n, r + 1, DIM), np.float32)  # (N, R+1, D)
    tokens[:, 1:] = _unit(images["features"][keep] + 1e-6)
    lengths = images["n_regions"][keep].astype(np.int64) + 1
    for i in range(n):
        tokens[i, 0] = _unit(tokens[i, 1:lengths[i]].mean(0))
        tokens[i, lengths[i]:] = 0
    write_embedding_side(out.join("images"), "images", [(list(np.asarray(images["image_id"])[keep]), tokens, lengths)])
    captions = read_shard(manifest, "captions", 0).to_pydict()
    text = dict(zip(captions["caption_id"], captions["text"]))
    tokenizer = load_tokenizer()
    pieces = [tokenizer.tokenize(text[c]) for c in caption_ids]
    width = max(len(p) for p in pieces) + 2
    cap_tokens = np.zeros((len(caption_ids), width, DIM), np.float32)
    for j, words in enumerate(pieces):
        vectors = _unit(np.stack([_word_vector(world, w) for w in words]))
        cap_tokens[j, 1:len(words) + 1] = vectors
        cap_tokens[j, 0] = cap_tokens[j, len(words) + 1] = _unit(vectors.mean(0))
    write_embedding_side(out.join("captions"), "captions", [(caption_ids, cap_tokens, np.array([len(p) + 2 for p in pieces]))])


def demo_sized_evaluation(root: Location, test_images: int = 1000, queries: int = 200, protocol: bool = True) -> tuple[dict, dict]:
    """(results, examples) of a two-stage evaluation of a ``test_images``-image synthetic split; ``protocol``
    adds the exhaustive split matrix (5M pairs for 1K images: the slowest step)."""
    cfg = SynthConfig(images=test_images, test_images=test_images, dev_images=0, feature_dim=DIM, feature_dtype="float32",
                      images_per_shard=test_images)
    dataset = root.join("dataset")
    generate_dataset(cfg, dataset)
    grounded_embeddings(dataset, root.join("emb"))
    build_index(root.join("emb"), root.join("index"), IndexSection(use_gpu=False))
    index = TeranIndex.open(root.join("index").uri)
    gt = load_ground_truth(dataset.uri, "test", index)
    two_stage = TwoStageConfig(k_candidates=100, padding="masked", hits_per_token=128)
    section = EvalSection(protocol="all", queries=queries, k_sweep=K_SWEEP, latency_queries=10, global_k=1000)
    mapper = local_mapper(CollectionEvaluator(index, two_stage, in_memory=True))
    split = evaluate_protocol(section, gt, mapper) if protocol else None
    results = evaluate_collection(section, two_stage, gt, {s: index.manifest["sides"][s]["items"] for s in ("images", "captions")},
                                  mapper, split)
    if split:
        results["protocol"] = {k: v for k, v in split.items() if k != "scores"}
    results.update(index=index.root.uri, model=None, run={"dataset": dataset.uri, "split": "test", "seed": 0, "sampled": True})
    examples = build_examples(mapper, gt, index, lambda i, c: dataset_metadata(dataset, i, c), 0, "masked", load_tokenizer())
    return results, examples

"""Images/s and captions/s of the reference-size TERAN on one GPU, with float16 autocast.

    python benchmarks/gpu_encode.py                 # on a GPU machine, from the repo root (about 2-3 minutes)
    python benchmarks/gpu_encode.py --device cpu --quick   # a smoke run of the script itself

Random weights, reference sizes (region transformer 4 x 2048, joint transformers 2 x 1024, a
6-layer bert-base-sized text backbone): speed does not depend on the weights. Two measurements:
1. the model alone over batches already on the GPU (36 regions x 2048 features per image,
   captions of ~12 words = 14-18 tokens with [CLS]/[SEP]);
2. the encode job's actor callable (``TeranEncoder``): an arrow batch in host memory -> GPU ->
   float16 embedding rows back in arrow, i.e. what one Ray actor can sustain, with one call at a
   time and with two in flight (``encode.calls_per_actor: 2``).
Goal per H100: >= 20,000 images/s and >= 30,000 captions/s.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

from teran_core import TERAN, TeranConfig, save_checkpoint  # noqa: E402
from teran_core.encode import ModelSpec, TeranEncoder  # noqa: E402
from teran_core.encode.read import prepared_schema  # noqa: E402
from teran_core.storage import resolve  # noqa: E402

REGIONS, FEATURES = 36, 2048  # bottom-up features_36
WORDS = (14, 18)  # tokens per caption incl. [CLS]/[SEP]: ~12 words of COCO


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--image-batches", default="256,512,1024", help="image batch sizes to try")
    p.add_argument("--caption-batches", default="512,1024,2048", help="caption batch sizes to try")
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds per batch size (after warm-up)")
    p.add_argument("--quick", action="store_true", help="tiny batches and 1 s per size (smoke run)")
    p.add_argument("--skip-callable", action="store_true", help="only the model measurement")
    return p.parse_args(argv)


def reference_model(device: torch.device) -> TERAN:
    """TERAN at the paper's sizes with random weights (bert-base shape, 6 layers, no download)."""
    from transformers import BertConfig

    bert = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072)
    return TERAN(TeranConfig(), bert_config=bert).to(device).eval()


def synthetic_images(batch: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    features = torch.randn(batch, REGIONS, FEATURES, device=device, dtype=torch.float16).abs()  # (B, R, F) post-ReLU-like
    corners = torch.rand(batch, REGIONS, 2, 2, device=device).sort(dim=2).values  # x1 <= x2, y1 <= y2
    boxes = corners.permute(0, 1, 3, 2).reshape(batch, REGIONS, 4)[..., [0, 2, 1, 3]]  # (B, R, 4) x1, y1, x2, y2
    return features, boxes, torch.full((batch,), REGIONS, device=device)


def synthetic_captions(batch: int, device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(WORDS[0], WORDS[1] + 1, (batch,), generator=g)
    ids = torch.randint(1000, 30000, (batch, int(lengths.max())), generator=g)
    slots = torch.arange(ids.shape[1])[None, :]
    ids[:, 0] = 101  # [CLS]
    ids[slots == (lengths - 1)[:, None]] = 102  # [SEP]
    ids[slots >= lengths[:, None]] = 0  # [PAD]
    return ids.to(device), lengths.to(device)


def timed(step, items: int, seconds: float, device) -> float:
    """Items/s of ``step()`` over at least ``seconds`` and 3 calls, after 2 warm-up calls."""
    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    sync()
    return calls * items / (time.perf_counter() - start)


def model_rates(model, device, args) -> dict:
    on_gpu = device.type == "cuda"
    autocast = torch.autocast(device_type="cuda", dtype=torch.float16) if on_gpu else contextlib.nullcontext()
    rates = {"images": {}, "captions": {}}
    with torch.inference_mode(), autocast:
        for batch in map(int, args.image_batches.split(",")):
            images = synthetic_images(batch, device)
            rates["images"][batch] = timed(lambda: model.encode_images(*images).tokens.to(torch.float16), batch, args.seconds, device)  # noqa: B023 (timed calls it now)
            print(f"  model, images   batch {batch:5d}: {rates['images'][batch]:10.1f} images/s", flush=True)
        for batch in map(int, args.caption_batches.split(",")):
            captions = synthetic_captions(batch, device)
            rates["captions"][batch] = timed(lambda: model.encode_captions(*captions).tokens.to(torch.float16), batch, args.seconds, device)  # noqa: B023 (timed calls it now)
            print(f"  model, captions batch {batch:5d}: {rates['captions'][batch]:10.1f} captions/s", flush=True)
    return rates


def arrow_batch(batch: int, kind: str) -> pa.Table:
    """A prepared batch as the job's CPU stage yields it (host memory, arrow)."""
    schema = prepared_schema(FEATURES, "float16")
    head = {"kind": [kind] * batch, "shard": [f"{kind}-00000.parquet"] * batch, "row": np.arange(batch),
            "id": [str(i) for i in range(batch)], "reason": [None] * batch}
    if kind == "images":
        features, boxes, n = (t.cpu() for t in synthetic_images(batch, "cpu"))
        offsets = pa.array(np.arange(batch + 1, dtype=np.int32) * REGIONS)
        region_lists = {
            "n_regions": n.numpy().astype(np.int32),
            "features": pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(pa.array(features.numpy().reshape(-1)), FEATURES)),
            "boxes": pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(pa.array(boxes.numpy().reshape(-1)), 4)),
        }
        return pa.table({**head, **region_lists, "input_ids": pa.nulls(batch, pa.list_(pa.int32()))}).cast(schema)
    ids, lengths = synthetic_captions(batch, "cpu")
    lists = [row[:n].tolist() for row, n in zip(ids, lengths)]
    return pa.table({**head, "n_regions": pa.nulls(batch, pa.int32()), "features": pa.nulls(batch, schema.field("features").type),
                     "boxes": pa.nulls(batch, schema.field("boxes").type), "input_ids": lists}).cast(schema)


def callable_rates(model, device, args) -> dict:
    """The Ray actor's callable at the best model batch sizes: arrow in, arrow out, float16 stored."""
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(model.cpu(), folder)
        encoder = TeranEncoder(ModelSpec(resolve(folder), "teran"), dtype="float16",
                               precision="float16" if device.type == "cuda" else "float32", device=device.type)
    rates = {}
    with ThreadPoolExecutor(2) as threads:
        for kind, batches in (("images", args.image_batches), ("captions", args.caption_batches)):
            batch = int(batches.split(",")[-1])
            table = arrow_batch(batch, kind)
            one = timed(lambda: encoder(table), batch, args.seconds, device)  # noqa: B023 (timed calls it now)
            # encode.calls_per_actor: 2 -- two calls in flight, as Ray Data's threaded actor runs them
            two = timed(lambda: list(threads.map(encoder, [table, table])), 2 * batch, args.seconds, device)  # noqa: B023
            rates[kind] = (one, two)
            print(f"  TeranEncoder callable, {kind:8s} batch {batch:5d}: {one:10.1f} {kind}/s one call at a time, "
                  f"{two:10.1f} with 2 calls in flight (arrow -> GPU -> arrow)", flush=True)
    return rates


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.image_batches, args.caption_batches, args.seconds = "4", "8", 1.0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_encode: error: no CUDA device; run on a GPU machine or pass --device cpu --quick", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; float16 autocast on GPU, float32 on CPU", flush=True)
    started = time.perf_counter()
    model = reference_model(device)
    print(f"reference-size TERAN: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters "
          f"(built in {time.perf_counter() - started:.1f} s)", flush=True)
    rates = model_rates(model, device, args)
    best = {kind: max(r.items(), key=lambda kv: kv[1]) for kind, r in rates.items()}
    if not args.skip_callable:
        callable_rates(model, device, args)
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print(f"summary on {name}: {best['images'][1]:.0f} images/s (batch {best['images'][0]}), "
          f"{best['captions'][1]:.0f} captions/s (batch {best['captions'][0]}) per GPU; goal 20000 / 30000 per H100; "
          f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

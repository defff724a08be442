"""``teran convert coco|f30k|precomp``: a folder in the reference layout to a teran dataset.

    teran convert coco --root data/coco --out s3://bucket/coco [--config configs/convert_coco.yaml] [section.key=value ...]

The driver plans from the annotations (no features), one Ray task per images shard reads its
features, validates and writes the shard, and the driver then writes captions, splits, rejects
and, last, dataset.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jobs.common import load_data_job_config, run_main
from jobs.config import ConvertJobConfig
from jobs.ray_runtime import RayExecutor
from jobs.synth import flag_overrides
from teran_core.config import to_yaml
from teran_core.data.convert import convert_dataset
from teran_core.data.errors import DataError
from teran_core.storage import resolve

PROG = "teran convert"
FORMATS = ("coco", "f30k", "precomp")
log = logging.getLogger("teran.convert")


def _run(config: str | None, overrides: list[str]) -> int:
    cfg = load_data_job_config(ConvertJobConfig, config, overrides)
    log.info("resolved config:\n%s", to_yaml(cfg))
    root, out = resolve(cfg.convert.root, cfg.storage), resolve(cfg.output.uri, cfg.storage)
    try:
        _, summary = convert_dataset(cfg.convert, root, out, cfg.coco, cfg.f30k, cfg.precomp, cfg.output.shard_mb,
                                     cfg.output.overwrite, executor=RayExecutor(cfg.ray))
    except DataError as err:
        print(f"{PROG}: error: {getattr(err, 'cause', None) or err}", file=sys.stderr)  # a task's error arrives wrapped by Ray
        return 2
    print(json.dumps({"dataset": out.uri, **summary}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=PROG, usage=f"{PROG} [{{{','.join(FORMATS)}}}] --root DIR --out URI [--config FILE] [section.key=value ...]",
                                     description="Convert COCO, Flickr30K or SCAN precomp features (docs/formats.md, 'Source layouts') into a teran dataset.")
    parser.add_argument("--config", help="YAML config; without one every default applies")
    parser.add_argument("--root", help="the source folder: a local path or s3:// URI (convert.root)")
    parser.add_argument("--out", help="the dataset folder: a local path or s3://bucket/prefix (output.uri)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="override config keys, e.g. convert.feature_dtype=float16")
    fmt = argv.pop(0) if argv and argv[0] in FORMATS else None  # the format may also come from convert.format
    args = parser.parse_args(argv)
    args.format = fmt
    overrides = flag_overrides(args, {"format": "convert.format", "root": "convert.root", "out": "output.uri"})
    return run_main(PROG, lambda: _run(args.config, overrides))


if __name__ == "__main__":
    sys.exit(main())

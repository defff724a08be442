"""What every job shares: argument parsing, config loading, clean errors and the step configs of a plan."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TypeVar

import yaml

from teran_core.config import ConfigError, from_dict, load_config, parse_overrides, to_yaml
from teran_core.storage import Location, RedactingFilter, store_unavailable_in

T = TypeVar("T")
log = logging.getLogger("teran")


def job_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every job takes: ``--config`` and ``key=value`` overrides."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="YAML config: a local path or an s3:// URI")
    parser.add_argument(
        "overrides", nargs="*", metavar="section.key=value",
        help="override single config keys, e.g. encode.batch_size=64",
    )
    return parser


def load_job_config(cls: type[T], args: argparse.Namespace, extra_overrides: Sequence[str] = ()) -> T:
    """Loads ``args.config`` into ``cls`` with the command line's overrides and logs the result."""
    cfg = load_data_job_config(cls, args.config, [*args.overrides, *extra_overrides])
    log.info("resolved config from %s:\n%s", args.config, to_yaml(cfg))
    return cfg


def run_main(prog: str, body: Callable[[], int | None]) -> int:
    """Runs a job body; a bad config or a missing file ends in one clear message and exit code 2, an
    object store that stayed unavailable past ``storage.deadline_s`` in one clear line and exit code 3."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # an endpoint URL with user:password in it never reaches a log
    try:
        return int(body() or 0)
    except (ConfigError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        unavailable = store_unavailable_in(err)
        if unavailable is None:
            raise
        print(f"{prog}: error: {unavailable}", file=sys.stderr)  # Ray's wrappers add a traceback; the cause is the line
        return 3


def step_config_dir(root: Location) -> str:
    """The local folder for the step configs of a job that chains jobs: ``<root>/configs`` on a local
    root; a fresh temporary folder for an object-store root (the jobs read local files; copies go to the store)."""
    path = root.join("configs").path if root.is_local else tempfile.mkdtemp(prefix="teran-configs-")
    os.makedirs(path, exist_ok=True)
    return path


def write_step_config(root: Location, config_dir: str, step: str, job: str, config: dict) -> str:
    """Writes one step's job config as ``<config_dir>/<step>.yaml``, opening with the command that runs it,
    and a copy at ``<root>/configs/<step>.yaml`` when ``root`` is on an object store; returns the local path.

    Example:
        >>> from teran_core.storage import resolve
        >>> root = resolve(tempfile.mkdtemp())
        >>> path = write_step_config(root, step_config_dir(root), "encode-a", "encode", {"encode": {"actors": 1}})
        >>> open(path).read().splitlines()[0] == f"# teran encode --config {path}"
        True
    """
    path = os.path.join(config_dir, f"{step}.yaml")
    with open(path, "w") as f:
        f.write(f"# teran {job} --config {path}\n")
        yaml.safe_dump(config, f, sort_keys=False)
    if not root.is_local:
        with open(path) as f:
            root.join("configs", f"{step}.yaml").write_text(f.read())
    return path


def check_steps(prog: str, steps: dict[str, tuple[type, dict]]) -> None:
    """Builds every step's job config (step -> (config class, the config as plain data)) before the first
    step runs, so that a bad value in a late step stops the whole run in seconds, not after the steps
    before it; a required location left empty counts too. Raises one ConfigError naming each problem's step.

    Example:
        >>> from jobs.config import EvaluateJobConfig
        >>> check_steps("teran pipeline", {"evaluate": (EvaluateJobConfig, {"two_stage": {"mode": "MrSW"}})})
        Traceback (most recent call last):
          ...
        teran_core.config.ConfigError: config teran pipeline's step configs is not valid (1 problem(s)):
          - step evaluate: two_stage.mode: got 'MrSW', expected one of 'MrSw', 'MrAVGw', 'MwSr', 'symm', 'sum', 'mean', 'scan-sentences'
    """
    problems = []
    for step, (cls, config) in steps.items():
        try:
            cfg = from_dict(cls, config, source=f"step {step}")
        except ConfigError as err:
            problems += [f"step {step}: {p}" for p in err.problems]
            continue
        problems += [f"step {step}: {p}" for p in getattr(cfg, "missing", list)()]
    if problems:
        raise ConfigError(f"{prog}'s step configs", problems)


def load_data_job_config(cls: type[T], config: str | None, overrides: Sequence[str]) -> T:
    """The job config from a YAML file plus overrides, or from the overrides alone when ``config`` is None.

    Example:
        >>> from jobs.config import SynthJobConfig
        >>> load_data_job_config(SynthJobConfig, None, ["synth.images=5000", "output.uri=/tmp/x"]).synth.images
        5000
    """
    if config:
        return load_config(cls, config, overrides)
    return from_dict(cls, parse_overrides(overrides), source="<command line>")

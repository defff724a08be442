"""Typed YAML configs: every job's knobs are dataclasses, loaded strictly.

A config file is plain YAML whose sections map onto nested dataclasses. Loading checks every
key, type and range and reports *all* problems at once in one :class:`ConfigError`, each naming
the file, the dotted key, the value found and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

__all__ = ["ConfigError", "knob", "from_dict", "load_config", "parse_overrides", "to_dict", "to_yaml"]


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"config {source} is not valid ({len(self.problems)} problem(s)):\n{lines}")


def knob(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, factory=None):
    """A dataclass field with an optional numeric range that :func:`from_dict` enforces.

    Example:
        >>> @dataclasses.dataclass
        ... class Pool:
        ...     size: int = knob(2, ge=1)  # number of actors
        >>> from_dict(Pool, {"size": 0}, source="x.yaml")
        Traceback (most recent call last):
        ...
        teran_core.config.ConfigError: config x.yaml is not valid (1 problem(s)):
          - size: got 0, expected a value >= 1
    """
    metadata = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return repr(tp).replace("typing.", "")
    return getattr(tp, "__name__", repr(tp))


def _convert(tp: Any, value: Any, key: str, problems: list[str]) -> Any:
    """Checks ``value`` against the annotation ``tp``; appends problems, returns the value to store."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            problems.append(f"{key}: got {value!r}, expected a mapping (section {tp.__name__})")
            return None
        return _build(tp, value, key + ".", problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            trial: list[str] = []
            out = _convert(arg, value, key, trial)
            if not trial:
                return out
        problems.append(f"{key}: got {value!r}, expected {_type_name(tp)}")
        return None
    if origin is Literal:
        if value not in args:
            problems.append(f"{key}: got {value!r}, expected {_type_name(tp)}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{key}: got {value!r}, expected a list")
            return None
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{key}: got {value!r}, expected a mapping")
            return None
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _convert(val_tp, v, f"{key}.{k}", problems) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key}: got {value!r}, expected a number")
            return None
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key}: got {value!r}, expected an integer")
            return None
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            problems.append(f"{key}: got {value!r}, expected {tp.__name__}")
            return None
        return value
    raise TypeError(f"config field {key} has an unsupported annotation {tp!r}")


def _check_range(f: dataclasses.Field, value: Any, key: str, problems: list[str]) -> None:
    if value is None or not f.metadata:
        return
    for op, bound in f.metadata.items():
        ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[op]
        if not ok:
            sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
            problems.append(f"{key}: got {value!r}, expected a value {sign} {bound}")


def _build(cls: type[T], data: Mapping, prefix: str, problems: list[str]) -> T | None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for unknown in sorted(set(data) - set(fields)):
        close = difflib.get_close_matches(str(unknown).replace("-", "_"), list(fields), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(fields))}"
        problems.append(f"{prefix}{unknown}: unknown key{hint}")
    kwargs = {}
    before = len(problems)
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{prefix}{name}: missing, expected {_type_name(hints[name])}")
            continue
        value = _convert(hints[name], data[name], prefix + name, problems)
        _check_range(f, value, prefix + name, problems)
        kwargs[name] = value
    if len(problems) > before:
        return None
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        problems.extend(f"{prefix}{p}" for p in check())
    return obj


def from_dict(cls: type[T], data: Mapping | None, *, source: str = "<dict>") -> T:
    """Builds the dataclass ``cls`` from a plain mapping, strictly.

    Unknown or misspelt keys, wrong types, out-of-range values and the cross-field problems a
    section's ``check()`` method returns are all collected and raised together.

    Args:
        cls: the config dataclass.
        data: the mapping, usually parsed YAML (``None`` means "all defaults").
        source: where the data came from, for the error message.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: with one line per problem.

    Example:
        >>> @dataclasses.dataclass
        ... class Resources:
        ...     num_cpus: int = knob(1, ge=0)
        >>> from_dict(Resources, {"num_cpus": 2})
        Resources(num_cpus=2)
    """
    problems: list[str] = []
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(source, [f"top level: got {type(data).__name__}, expected a mapping of sections"])
    obj = _build(cls, data or {}, "", problems)
    if problems:
        raise ConfigError(source, problems)
    return obj  # type: ignore[return-value]


def parse_overrides(overrides: Sequence[str]) -> dict:
    """Turns ``["index.nprobe=16", "storage.region=eu-west-1"]`` into a nested dict.

    Values are parsed as YAML scalars, so ``16`` is an int, ``true`` a bool and ``null`` None.

    Example:
        >>> parse_overrides(["encode.batch_size=64", "model.dtype=float16"])
        {'encode': {'batch_size': 64}, 'model': {'dtype': 'float16'}}
    """
    out: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError("<command line>", [f"{item!r}: expected an override of the form section.key=value"])
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError("<command line>", [f"{item!r}: {part} is set both as a value and a section"])
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _merge(base: dict, extra: Mapping) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(cls: type[T], uri: str | Path, overrides: Sequence[str] = (), storage=None) -> T:
    """Loads a YAML config from a local path or an object-store URI into ``cls``.

    Args:
        cls: the job's config dataclass.
        uri: ``configs/encode.yaml``, ``file:///…`` or ``s3://bucket/configs/encode.yaml``.
        overrides: ``section.key=value`` strings applied on top of the file.
        storage: a :class:`teran_core.storage.StorageConfig` for reading the file itself.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ConfigError: the file is not valid YAML or does not fit ``cls``.

    Example:
        >>> from teran_core.storage import StorageConfig
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "s.yaml")
        >>> _ = open(path, "w").write("region: eu-west-1\\n")
        >>> load_config(StorageConfig, path).region
        'eu-west-1'
    """
    from teran_core.storage import read_text  # storage imports config; keep the cycle lazy

    source = str(uri)
    try:
        text = read_text(source, storage)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {source} does not exist") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(source, [f"not valid YAML: {err}"]) from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(source, [f"top level: got {type(data).__name__}, expected a mapping of sections"])
    merged = _merge(dict(data or {}), parse_overrides(overrides))
    try:
        return from_dict(cls, merged, source=source)
    except ConfigError as err:
        raise ConfigError(source, [_name_origin(p, overrides) for p in err.problems]) from None


def _name_origin(problem: str, overrides: Sequence[str]) -> str:
    """``problem`` with its key marked "(command line)" when an override set it (or created its section), so
    nobody searches the file for it.

    Example:
        >>> _name_origin("two_stage.mode: got 'MrSW', expected ...", ["two_stage.mode=MrSW"])
        "two_stage.mode (command line): got 'MrSW', expected ..."
        >>> _name_origin("ouput: unknown key", ["ouput.uri=/tmp/x"])
        'ouput (command line): unknown key'
    """
    key, sep, rest = problem.partition(":")
    path = re.sub(r"\[\d+\]", "", key).split(".")
    given = [o.partition("=")[0].split(".") for o in overrides]
    if sep and any(g[: len(path)] == path or path[: len(g)] == g for g in given):
        return f"{key} (command line):{rest}"
    return problem


def to_dict(cfg: Any) -> dict:
    """The config as plain data (for logging and for writing beside results)."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal object."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

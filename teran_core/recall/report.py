"""Writing evaluation results: ``results.json``, ``report.md`` and two PNG plots (matplotlib Agg); ``report.html``
is teran_core/html_report's.

Plots: recall@K of two-stage retrieval against K' (with exhaustive as dashed lines), and R@10
against the fraction of image-caption pairs scored with exact TERAN alignment.
"""

from __future__ import annotations

import io
import json
import math

from teran_core.html_report.identity import run_header
from teran_core.storage import Location

__all__ = ["write_report", "markdown_report", "to_json", "plots", "evaluator_name"]

DIRECTIONS = ("i2t", "t2i")
_COLUMNS = [(f"{d}_{m}", f"{d} {m.replace('r', 'R@') if m[1:].isdigit() else m}") for d in DIRECTIONS
            for m in ("r1", "r5", "r10", "medr")] + [("rsum", "rsum")]


def _finite(value):
    """JSON has no infinity: inf/NaN become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


def to_json(results: dict) -> str:
    """The results as strict JSON (no Infinity/NaN; numpy values as plain numbers)."""
    return json.dumps(_finite(results), indent=1, sort_keys=True, allow_nan=False) + "\n"


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def evaluator_name(name: str, global_kind: str | None) -> str:
    """How reports name an evaluator: global kNN over a distilled head's vectors is "distilled global".

    Example:
        >>> evaluator_name("global", "distilled"), evaluator_name("global", "slot0"), evaluator_name("two-stage", "distilled")
        ('distilled global', 'global', 'two-stage')
    """
    return "distilled global" if name == "global" and global_kind == "distilled" else name


def markdown_report(results: dict) -> str:
    """The results as a markdown report.

    Example:
        >>> m = {k: 50.0 for k, _ in _COLUMNS}
        >>> text = markdown_report({"collection": {"images": 2, "captions": 10}, "queries": {"images": 2, "captions": 10},
        ...                         "evaluators": {"global": {"metrics": m, "pairs": 0, "pairs_fraction": 0.0, "qps": 9.0}}})
        >>> "| global | 50.0 |" in text
        True
    """
    lines = ["# teran retrieval evaluation", ""]
    lines += [f"- {label}: {value}" for label, value in run_header(results)]
    if results.get("exhaustive_skipped"):
        lines.append(f"- exhaustive_skipped: {results['exhaustive_skipped']}")
    if results.get("global_kind") == "distilled":
        lines.append("- global vectors: a distilled head's (docs/distill.md), so global kNN is \"distilled global\"")
    protocol = results.get("protocol")
    if protocol:
        lines += ["", f"## Reference protocol {protocol['name']} (exhaustive exact TERAN on the split)", ""]
        lines += [protocol["skipped"]] if "skipped" in protocol else _table(
            [c for _, c in _COLUMNS], [[_num(protocol["metrics"][k]) for k, _ in _COLUMNS]])
    header = ["evaluator", *(c for _, c in _COLUMNS), "rsum gap", "R@10 ratio i2t / t2i", "pairs scored", "fraction", "qps"]
    rows = []
    for name, r in results["evaluators"].items():
        shown = evaluator_name(name, results.get("global_kind"))
        label = f"{shown} (K'={r['k_candidates']})" if "k_candidates" in r else f"{shown} (k={r['k']})" if "k" in r else shown
        ratio = r.get("r10_ratio") or {}
        rows.append([label, *(_num(r["metrics"][k]) for k, _ in _COLUMNS), _num(r.get("gap", {}).get("rsum")),
                     f"{_num(ratio.get('i2t'), 3)} / {_num(ratio.get('t2i'), 3)}", str(r["pairs"]),
                     f"{r['pairs_fraction']:.3%}", _num(r["qps"])])
    lines += ["", "## Evaluators (queries against the whole collection)", "", *_table(header, rows)]
    if results.get("sweep"):
        lines += ["", "## Two-stage K' sweep", ""]
        lines += _table(["K'", "i2t R@10", "t2i R@10", "rsum", "pairs fraction", "qps"], [
            [str(r["k_candidates"]), _num(r["metrics"]["i2t_r10"]), _num(r["metrics"]["t2i_r10"]),
             _num(r["metrics"]["rsum"]), f"{r['pairs_fraction']:.3%}", _num(r["qps"])] for r in results["sweep"]])
    if results.get("latency_ms"):
        lat = results["latency_ms"]
        lines += ["", f"## Latency ({lat['direction']}, one query at a time, K'={lat['k_candidates']}, {lat['queries']} queries)", "",
                  f"p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms"]
    return "\n".join(lines) + "\n"


def plots(results: dict) -> dict[str, bytes]:
    """The PNG plots of a run (file name -> bytes): recall against K' and against the pairs scored; {} without a sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep, exhaustive = results.get("sweep", []), results["evaluators"].get("exhaustive")
    if not sweep:
        return {}
    out = {}
    ks = [r["k_candidates"] for r in sweep]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, d in zip(axes, DIRECTIONS):
        for k, style in zip((1, 5, 10), ("o-", "s-", "^-")):
            line = ax.plot(ks, [r["metrics"][f"{d}_r{k}"] for r in sweep], style, label=f"two-stage R@{k}")
            if exhaustive:
                ax.axhline(exhaustive["metrics"][f"{d}_r{k}"], ls="--", color=line[0].get_color(), lw=1)
        ax.set(xscale="log", xlabel="K' (candidates per query, log)", title=f"{d} (dashed: exhaustive)")
        ax.set_xticks(ks, [str(k) for k in ks])
    axes[0].set_ylabel("recall (%)")
    axes[0].legend()
    out["recall_vs_kprime.png"] = _png(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    for d in DIRECTIONS:
        line = ax.plot([max(r["pairs_fraction"], 1e-9) for r in sweep], [r["metrics"][f"{d}_r10"] for r in sweep], "o-", label=f"two-stage {d}")
        if exhaustive:
            ax.axhline(exhaustive["metrics"][f"{d}_r10"], ls="--", color=line[0].get_color(), lw=1, label=f"exhaustive {d}")
    ax.set(xscale="log", xlabel="fraction of pairs scored exactly (log)", ylabel="R@10 (%)", title="R@10 against pairs scored")
    ax.legend()
    out["recall_vs_pairs.png"] = _png(fig)
    return out


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_report(results: dict, folder: Location) -> list[str]:
    """Writes results.json, report.md and the PNG plots into ``folder``; returns the file names."""
    files = {"results.json": to_json(results).encode(), "report.md": markdown_report(results).encode(), **plots(results)}
    for name, data in files.items():
        folder.join(name).write_bytes(data)
    return sorted(files)

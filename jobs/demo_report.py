"""The demo's report: the comparison table of its models (``report.md``) and the summary page (``report.html``)."""

from __future__ import annotations

import json

from jobs.demo_config import DemoJobConfig
from jobs.demo_plan import MODELS
from teran_core.html_report.identity import describe_model
from teran_core.html_report.render import demo_page
from teran_core.recall.report import evaluator_name
from teran_core.storage import Location

__all__ = ["METRICS", "comparison_rows", "comparison_markdown", "summary_page"]


METRICS = ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "rsum")


def comparison_rows(results: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(model, evaluator, metrics) rows from each model's evaluate results.json, in report order.

    Example:
        >>> m = {k: 1.0 for k in METRICS}
        >>> rows = comparison_rows({name: {"global_kind": "distilled" if name == "distilled" else "slot0",
        ...                                "evaluators": {e: {"metrics": m} for e in MODELS[name].evaluators}} for name in MODELS})
        >>> [(model, evaluator) for model, evaluator, _ in rows if model == "distilled"]
        [('distilled', 'distilled global'), ('distilled', 'two-stage, distilled candidates')]
    """
    rows = []
    for name, model in MODELS.items():
        kind = results[name].get("global_kind")
        for evaluator, result in results[name]["evaluators"].items():
            label = evaluator_name(evaluator, kind)
            if evaluator == "two-stage" and model.candidates == "global":
                label += f", {'distilled' if kind == 'distilled' else 'global'} candidates"
            rows.append((name, label, {k: result["metrics"][k] for k in METRICS}))
    return rows


def comparison_markdown(rows: list[tuple[str, str, dict]], notes: list[str]) -> str:
    """The demo's headline table (recalls in percent) with its notes."""
    header = "| model | evaluator | t2i R@1 | t2i R@5 | t2i R@10 | i2t R@1 | i2t R@5 | i2t R@10 | rsum |"
    lines = [header, "|" + " --- |" * 9]
    lines += [f"| {m} | {e} | " + " | ".join(f"{v[k]:.1f}" for k in METRICS) + " |" for m, e, v in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def summary_page(root: Location, cfg: DemoJobConfig, results: dict[str, dict], notes: list[str]) -> str:
    """The demo's ``report.html``: the comparison, the trained TERAN's alignments and gallery (its evaluation's
    ``examples.json``), its recall-vs-K' plots, both training curves, and links to each evaluation's page."""
    figures = {}
    for caption, path in (("TERAN two-stage: recall against K'", ("eval", "teran", "recall_vs_kprime.png")),
                          ("TERAN two-stage: R@10 against the pairs scored", ("eval", "teran", "recall_vs_pairs.png")),
                          *((f"training curves: {name}", ("models", name, "curves.png")) for name, m in MODELS.items() if m.loss_weights)):
        if root.join(*path).exists():
            figures[caption] = root.join(*path).read_bytes()
    examples_file = root.join("eval", "teran", "examples.json")
    examples = json.loads(examples_file.read_text()) if examples_file.exists() else None
    teran = results["teran"]
    header = [*((f"model {name}", describe_model(results[name].get("model"))) for name in MODELS),
              ("dataset", teran.get("run", {}).get("dataset", "-")), ("split", "test"),
              ("query sample", f"{teran['queries']['captions']} captions (t2i), {teran['queries']['images']} images (i2t): seeded sample"),
              ("seed", str(cfg.data.seed)), ("output", root.uri)]
    links = {name: f"eval/{name}/report.html" for name in MODELS}
    return demo_page(comparison_rows(results), notes, list(METRICS), examples, figures, links, header)

"""The HTML pages: one per evaluation (``report.html`` beside ``report.md``) and the demo's summary.

Each page is one self-contained file (styles, plots and drawings inline, no script or font from
elsewhere) rendered with Jinja2 from ``templates/``; plots are matplotlib PNGs, images are SVG
drawn from the region boxes (``scenes.py``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import jinja2

from teran_core.html_report.identity import run_header
from teran_core.html_report.scenes import picture_data_uri, scene_shapes
from teran_core.recall.report import _COLUMNS, _num, plots
from teran_core.storage import Location

__all__ = ["evaluation_page", "demo_page", "write_evaluation_report", "picture_loader", "png_data_uri", "WORD_COLOURS"]

# matplotlib's tab10 without its grey: distinct on the scene's pale backgrounds
WORD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("teran_core.html_report", "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_ENV.filters["num"] = _num


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a data URI for an ``<img>``.

    Example:
        >>> png_data_uri(b"x")
        'data:image/png;base64,eA=='
    """
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _drawings(images: dict, picture: Callable[[str], str] | None) -> dict:
    return {image: dict(scene_shapes(data), picture=picture(image) if picture else None) for image, data in images.items()}


def _alignment(view: dict, drawing: dict) -> dict:
    """The alignment view's words, each content word with its colour and its region's rectangle."""
    if "error" in view:
        return view
    rects = {r["region"]: r for r in drawing["regions"]}
    words, highlights, colour, on_region = [], [], 0, {}
    step = drawing["width"] / 80  # a region several words align to gets nested boxes, each inset by this
    for w in view["words"]:
        word = dict(w, colour=None)
        if w["content"] and w["region"] in rects:
            word["colour"] = WORD_COLOURS[colour % len(WORD_COLOURS)]
            colour += 1
            r, inset = rects[w["region"]], step * on_region.get(w["region"], 0)
            on_region[w["region"]] = on_region.get(w["region"], 0) + 1
            highlights.append(dict(r, x=r["x"] + inset, y=r["y"] + inset, w=max(r["w"] - 2 * inset, 1.0), h=max(r["h"] - 2 * inset, 1.0),
                                   colour=word["colour"], word=len(words), text=w["text"]))
        words.append(word)
    return dict(view, words=words, highlights=highlights, total=sum(w["contribution"] for w in view["words"]))


def _examples_context(examples: dict | None, picture) -> dict:
    if not examples:
        return {"examples": None, "drawings": {}, "alignments": []}
    drawings = _drawings(examples["images"], picture)
    return {"examples": examples, "drawings": drawings,
            "alignments": [_alignment(a, drawings[a["image"]]) for a in examples["alignments"]]}


def _evaluator_rows(results: dict) -> list[dict]:
    rows = []
    for name, r in results["evaluators"].items():
        label = f"{name} (K'={r['k_candidates']})" if "k_candidates" in r else f"{name} (k={r['k']})" if "k" in r else name
        rows.append({"label": label, "metrics": [_num(r["metrics"][k]) for k, _ in _COLUMNS], "pairs": r["pairs"],
                     "fraction": f"{r['pairs_fraction']:.3%}", "qps": _num(r["qps"]), "gap": _num(r.get("gap", {}).get("rsum"))})
    return rows


def picture_loader(images_root: Location | None, file_name: str) -> Callable[[str], str] | None:
    """``image id -> data URI`` of the original pictures under ``images_root`` (None: draw the boxes only).

    ``file_name`` is a format string of ``image_id``, e.g. ``"val2014/COCO_val2014_{image_id:0>12}.jpg"``.
    """
    if images_root is None:
        return None
    return lambda image: picture_data_uri(images_root, file_name.format(image_id=image))


def evaluation_page(results: dict, examples: dict | None = None, picture: Callable[[str], str] | None = None,
                    title: str = "teran retrieval evaluation") -> str:
    """The HTML report of one ``teran evaluate`` run.

    Args:
        results: the run's results (as in ``results.json``).
        examples: the gallery and alignment views (``examples.build_examples``), or None.
        picture: image id -> data URI of the original picture (:func:`picture_loader`); None draws
            the scene from the dataset's boxes and labels.
        title: the page title.

    Example:
        >>> m = {k: 50.0 for k, _ in _COLUMNS}
        >>> page = evaluation_page({"collection": {"images": 2, "captions": 10}, "queries": {"images": 2, "captions": 10},
        ...                         "evaluators": {"global": {"metrics": m, "pairs": 0, "pairs_fraction": 0.0, "qps": 9.0}}})
        >>> page.startswith("<!DOCTYPE html>"), "<td>global</td>" in page
        (True, True)
    """
    figures = {name: png_data_uri(png) for name, png in plots(results).items()}
    return _ENV.get_template("evaluation.html.j2").render(
        title=title, header=run_header(results), results=results, columns=[c for _, c in _COLUMNS], metric_keys=[k for k, _ in _COLUMNS],
        rows=_evaluator_rows(results), figures=figures, **_examples_context(examples, picture))


def demo_page(table: list[tuple[str, str, dict]], notes: list[str], metric_names: list[str], examples: dict | None,
              figures: dict[str, bytes], links: dict[str, str], header: list[tuple[str, str]]) -> str:
    """The demo's summary page: the comparison table, the trained TERAN's gallery and alignments, plots, links.

    Args:
        table: (model, evaluator, metrics) rows (``jobs.demo_report.comparison_rows``).
        notes: the table's notes.
        metric_names: the metric keys of the table's columns, in order.
        examples: the TERAN evaluation's ``examples.json``, or None.
        figures: caption -> PNG bytes (recall against K', training curves, ...).
        links: label -> relative link to each evaluation's own report.html.
        header: (label, value) lines under the title.
    """
    return _ENV.get_template("demo.html.j2").render(
        title="teran demo", header=header, table=table, notes=notes, metric_names=metric_names,
        figures={caption: png_data_uri(png) for caption, png in figures.items()}, links=links,
        **_examples_context(examples, None))


def write_evaluation_report(results: dict, examples: dict | None, folder: Location,
                            picture: Callable[[str], str] | None = None) -> list[str]:
    """Writes ``report.html`` (and ``examples.json``, which the demo's page reads) into ``folder``; returns the file names.

    Example:
        >>> import tempfile
        >>> from teran_core.storage import resolve
        >>> m = {k: 50.0 for k, _ in _COLUMNS}
        >>> write_evaluation_report({"collection": {"images": 2, "captions": 10}, "queries": {"images": 2, "captions": 10},
        ...     "evaluators": {"global": {"metrics": m, "pairs": 0, "pairs_fraction": 0.0, "qps": 9.0}}}, None, resolve(tempfile.mkdtemp()))
        ['report.html']
    """
    files = {"report.html": evaluation_page(results, examples, picture).encode()}
    if examples is not None:
        files["examples.json"] = (json.dumps(examples) + "\n").encode()
    for name, data in files.items():
        folder.join(name).write_bytes(data)
    return sorted(files)

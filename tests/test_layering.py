"""The library never depends on the jobs or on Ray, and its layers import only downwards."""

import ast
import pathlib
import subprocess
import sys


def test_teran_core_imports_without_ray():
    code = (
        "import sys, teran_core, teran_core.storage, teran_core.config, teran_core.embeddings\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(teran_core.__path__, 'teran_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') or m.startswith('jobs'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# the library's layers, lowest first: a module may import its own layer and those below, never one above
LAYERS = [
    {"config", "storage"},
    {"data"},
    {"model", "alignment", "checkpoint"},
    {"encode", "embeddings", "embedding_set"},
    {"index", "compress"},
    {"retrieval"},
    {"recall"},
]
# known upward imports, each to go (issue 15); a new one fails the test
KNOWN = {
    ("data", "model"),  # data/collate.py takes the tokenizer from model/backbone.py
    ("embedding_set", "compress"),  # EmbeddingSet decompresses a compressed store's shards
}


def _layer(module: str) -> int | None:
    top = module.split(".")[1] if module.count(".") else ""
    return next((n for n, layer in enumerate(LAYERS) if top in layer), None)


def _imports(path: pathlib.Path) -> set[str]:
    """Every teran_core module ``path`` imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("teran_core."):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("teran_core."))
    return names


def test_layers_import_only_downwards():
    root = pathlib.Path(__file__).resolve().parent.parent / "teran_core"
    upward = set()
    for path in root.rglob("*.py"):
        module = ".".join(("teran_core", *path.relative_to(root).with_suffix("").parts))
        low = _layer(module)
        for imported in _imports(path):
            high = _layer(imported)
            if low is not None and high is not None and high > low:
                upward.add((module.split(".")[1], imported.split(".")[1], path.relative_to(root).as_posix()))
    assert {(a, b) for a, b, _ in upward} <= KNOWN, sorted(upward)

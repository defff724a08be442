"""The library never depends on the jobs or on Ray, and its layers import only downwards."""

import ast
import pathlib
import subprocess
import sys


def test_teran_core_imports_without_ray():
    code = (
        "import sys, teran_core, teran_core.storage, teran_core.config, teran_core.embedding_set\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(teran_core.__path__, 'teran_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') or m.startswith('jobs'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# the library's layers, lowest first: a module may import its own layer and those below, never one above.
# A name is a top-level module or package of teran_core, or a dotted module in one (the longest match counts).
LAYERS = [
    {"config", "storage", "progress", "executor"},
    {"data"},
    {"model", "alignment", "checkpoint"},
    {"encode", "embedding_set", "compress"},  # compress: the token codec the embedding set reads
    {"index", "compress.run"},  # compress.run: the compress job's driver, which samples tokens as the index does
    {"retrieval"},
    {"recall"},
]


def _layer(module: str) -> int | None:
    parts = module.split(".")[1:]
    for name in (".".join(parts[:2]), parts[0] if parts else ""):
        found = next((n for n, layer in enumerate(LAYERS) if name in layer), None)
        if found is not None:
            return found
    return None


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
    upward = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("teran_core", *path.relative_to(root).with_suffix("").parts))
        for imported in sorted(_imports(path)):
            low, high = _layer(module), _layer(imported)
            if low is not None and high is not None and high > low:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_layer_check_sees_an_upward_import_inside_a_function(tmp_path):
    path = tmp_path / "catalog.py"
    path.write_text("def retriever():\n    from teran_core.retrieval import TwoStageRetriever\n")
    assert _layer("teran_core.index.catalog") < _layer(next(iter(_imports(path))))


def test_job_configs_and_plans_live_in_jobs():
    """The library holds algorithm sections; what a job reads (its config, Ray's section, a plan of jobs) is jobs/'s."""
    root = pathlib.Path(__file__).resolve().parent.parent / "teran_core"
    job_shaped = [f"{path.relative_to(root)}: class {node.name}" for path in sorted(root.rglob("*.py"))
                  for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.ClassDef) and (node.name.endswith("JobConfig") or node.name in ("RayConfig", "Step"))]
    assert job_shaped == []

"""The library never depends on the jobs or on Ray."""

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

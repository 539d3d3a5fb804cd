"""The engine is a pure core: it runs on the standard library alone (style.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "recist"
# The shell of the package: the command line and the JSON boundary.
SHELL = {"cli.py", "cli_assess.py", "jsonio.py", "__main__.py"}


def test_core_modules_import_only_the_standard_library_and_the_core():
    allowed_roots = set(sys.stdlib_module_names) | {"recist"}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in SHELL:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root in allowed_roots, f"{path.name} imports {name}"
                assert name not in {f"recist.{m[:-3]}" for m in SHELL}, f"{path.name}: {name}"


def test_the_engine_assesses_a_case_without_any_third_party_package():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from datetime import date\n"
        "from recist import assess, Case, Lesion, Timepoint\n"
        "from recist.lesions import LesionKind, TargetValue\n"
        "c = Case('S', (Lesion('T1', 'liver', LesionKind.TARGET),), (\n"
        "  Timepoint('BL', date(2021,1,1), {'T1': TargetValue.measured(30)}),\n"
        "  Timepoint('W8', date(2021,3,1), {'T1': TargetValue.measured(20)})))\n"
        "print(assess(c).timepoints[1].overall_response.value)\n"
        "import importlib.util\n"
        "spec = importlib.util.find_spec\n"
        "print(spec('pydantic') is None, spec('numpy') is None)\n"
    )
    # -S: no site-packages, -I: isolated from the environment: the standard library only.
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, str(PACKAGE.parent)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["PR", "True", "True"]

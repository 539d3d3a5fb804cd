"""Packaging: the core installs alone, each extra covers what its packages import, and the
``recist`` command finds its subcommands through entry points.

``tests/recist/test_purity.py`` holds the engine to the standard library; here the whole
``recist`` package (its shell included) is held to the standard library and pydantic,
which is what ``pip install recist-service`` installs.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import importlib
import io
import json
import re
import sys
from importlib.metadata import EntryPoint, packages_distributions
from pathlib import Path

import pytest

from recist import cli
from tests.recist.conftest import case, fu

ROOT = Path(__file__).parents[1]
SHELL_PACKAGES = ("imaging_io", "cdisc_io", "endpoints", "web")
CORE = {"pydantic", "pydantic-core"}  # pydantic-core: pydantic's own, the validator's schema


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg")
    return parser


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normal(match.group(0))


def _normal(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def _install_requires() -> list[str]:
    return _lines(_setup_cfg()["options"]["install_requires"])


def _extras() -> dict[str, list[str]]:
    return {k: _lines(v) for k, v in _setup_cfg()["options.extras_require"].items()}


def _declared_commands() -> dict[str, EntryPoint]:
    text = _setup_cfg()["options.entry_points"][cli.GROUP]
    commands = {}
    for line in _lines(text):
        name, _, value = (part.strip() for part in line.partition("="))
        commands[name] = EntryPoint(name=name, value=value, group=cli.GROUP)
    return commands


def _imports(package: str) -> set[str]:
    """Top-level names imported anywhere in ``package`` (functions, TYPE_CHECKING included)."""
    roots = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def _third_party(package: str) -> set[str]:
    return _imports(package) - set(sys.stdlib_module_names) - {"recist", *SHELL_PACKAGES}


def _distributions(roots: set[str]) -> set[str]:
    """The distributions providing the import names ``roots`` (in this environment)."""
    providers = packages_distributions()
    missing = sorted(root for root in roots if root not in providers)
    assert not missing, f"no installed distribution provides {missing}"
    return {_normal(dist) for root in roots for dist in providers[root]}


# --- the core ---------------------------------------------------------------------------


def test_recist_imports_only_the_standard_library_and_pydantic():
    assert {_normal(name) for name in _third_party("recist")} <= CORE, _third_party("recist")
    assert not _imports("recist") & set(SHELL_PACKAGES)


def test_install_requires_is_exactly_the_core():
    assert {_name(r) for r in _install_requires()} == CORE
    assert _distributions(_third_party("recist")) == CORE


def test_recist_cli_names_no_shell_package():
    tree = ast.parse((ROOT / "recist" / "cli.py").read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    words = re.compile(rf"\b({'|'.join(SHELL_PACKAGES)})\b")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                assert not words.search(node.value), node.value
        elif isinstance(node, ast.Name | ast.alias | ast.Attribute):
            text = getattr(node, "id", None) or getattr(node, "name", None) or node.attr
            assert text not in SHELL_PACKAGES, text


# --- the extras -------------------------------------------------------------------------


def test_each_extra_lists_what_its_packages_import():
    """A package's extra is the one its commands declare; it covers the package's own
    imports and those of the shell packages it imports (web imports imaging_io, ...)."""
    extras = _extras()
    core = {_name(r) for r in _install_requires()}
    extra_of = {}
    for ep in _declared_commands().values():
        package = ep.module.split(".")[0]
        extra_of.setdefault(package, set()).update(ep.extras)
    assert set(extra_of) == {"recist", *SHELL_PACKAGES}
    for package in SHELL_PACKAGES:
        reached, todo = set(), [package]
        while todo:
            current = todo.pop()
            if current not in reached:
                reached.add(current)
                todo.extend(_imports(current) & set(SHELL_PACKAGES))
        needed = _distributions(set().union(*(_third_party(p) for p in reached)))
        declared = core | {_name(r) for extra in extra_of[package] for r in extras[extra]}
        assert needed <= declared, f"{package} [{extra_of[package]}] lacks {needed - declared}"


def test_all_is_every_other_extra_and_versions_agree():
    extras = _extras()
    others = ("imaging", "cdisc", "web", "postgres")
    assert set(extras["all"]) == set().union(*(extras[e] for e in others))
    pins: dict[str, str] = {}
    for requirement in (r for reqs in extras.values() for r in reqs):
        assert pins.setdefault(_name(requirement), requirement) == requirement, requirement


def test_make_installs_every_extra_and_the_tests():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[all,test]'" in makefile


# --- the commands -----------------------------------------------------------------------


def test_the_installed_commands_are_those_setup_cfg_declares():
    """Fails when the environment was installed from an older setup.cfg: run `make`."""
    declared = _declared_commands()
    installed = cli.discover()
    assert sorted(installed) == sorted(declared)
    for name, ep in declared.items():
        assert installed[name].module == ep.module
        assert installed[name].extras == ep.extras
        assert set(ep.extras) <= set(_extras()), name


def test_every_command_module_registers_and_runs_and_its_help_reads_statically():
    for name, ep in _declared_commands().items():
        module = importlib.import_module(ep.module)
        assert callable(module.register) and callable(module.run), name
        runtime = getattr(module, "HELP", None) or cli.summary(module.__doc__)
        assert runtime and cli.help_of(ep.module) == runtime, name


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def case_file(tmp_path: Path) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case({"T1": 30.0}, fu(targets={"T1": 20.0}))))
    return path


def test_a_command_whose_extra_is_missing_is_refused_in_one_line(monkeypatch, case_file):
    real = cli._installed
    monkeypatch.setattr(cli, "_installed", lambda project: project != "SimpleITK" and real(project))

    status, out, err = _main(["measure", "image", "--seg", "seg.nii"])
    assert (status, out) == (2, "")
    assert err.count("\n") == 1, err
    assert "recist measure: needs the [imaging] extra" in err
    assert "missing SimpleITK" in err and "pip install 'recist-service[imaging]'" in err

    status, out, _ = _main(["--help"])
    assert status == 0
    listed, apart = out.split("not installed here:\n")
    assert "    measure " not in listed and "    assess " in listed
    # web needs the imaging stack too (uploads), so its commands are listed apart as well
    assert apart.splitlines() == [
        "  audit, db, demo-run, serve, users: pip install 'recist-service[web]'",
        "  batch, export-sr, ingest, measure, pull, push: pip install 'recist-service[imaging]'",
    ]

    status, out, err = _main(["assess", str(case_file)])
    assert status == 0, err
    assert json.loads(out)["timepoints"][1]["overall_response"] == "PR"


def test_a_command_whose_module_cannot_load_is_refused_in_one_line(monkeypatch, case_file):
    broken = EntryPoint(name="broken", value="no_such_package.cli", group=cli.GROUP)
    real = cli.entry_points
    monkeypatch.setattr(cli, "entry_points", lambda group: [*real(group=group), broken])

    status, _, err = _main(["broken"])
    assert status == 2
    assert err == (
        "recist broken: cannot load no_such_package.cli (No module named 'no_such_package')\n"
    )

    status, out, _ = _main(["--help"])
    assert status == 0
    assert out.endswith("not installed here:\n  broken: no_such_package.cli not found\n")

    status, _, err = _main(["assess", str(case_file)])
    assert status == 0, err

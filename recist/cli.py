"""The ``recist`` command line: the imperative shell around the engine.

This module (with :mod:`recist.jsonio` and :mod:`recist.__main__`) is the package's edge:
it reads files and standard streams. The engine modules never import it.

It names no subcommand and no other package. Each package registers its own commands as
entry points of the group ``recist.commands`` (in ``setup.cfg``), written
``name = module [extra, ...]``: the module defines ``register(parser)``, which adds the
command's arguments, and ``run(args) -> int``; the extras are those the command needs
beyond the core. A command's help line is its module's ``HELP`` string, else the summary
of its docstring, read from the source without importing it. Only the module of the
command being run is imported, so ``recist --help`` and ``recist assess`` never load
numpy, pandas or Flask, and a package whose extra is not installed breaks nothing else:
``recist --help`` lists it apart and running it says, in one line, what to install.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from types import ModuleType

GROUP = "recist.commands"

_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")
_PROJECT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# "``recist assess CASE``: assess cases …" -> "assess cases …"
_USAGE_PREFIX = re.compile(r"^``[^`]*``\s*:\s*")


def discover() -> dict[str, EntryPoint]:
    """Every registered command by name (sorted), the first registration of a name winning."""
    found: dict[str, EntryPoint] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        found.setdefault(ep.name, ep)
    return found


def _installed(project: str) -> bool:
    try:
        distribution(project)
    except PackageNotFoundError:
        return False
    return True


def missing_requirements(ep: EntryPoint) -> list[str]:
    """The distributions that the extras of ``ep`` require and that are not installed."""
    if not ep.extras or ep.dist is None:
        return []
    wanted = set(ep.extras)
    missing: list[str] = []
    for requirement in ep.dist.requires or ():
        spec, _, marker = requirement.partition(";")
        name = _PROJECT_NAME.match(spec)
        if name is None or not wanted & set(_EXTRA_MARKER.findall(marker)):
            continue
        project = name.group(1)
        if project not in missing and not _installed(project):
            missing.append(project)
    return missing


def _install_hint(ep: EntryPoint) -> str:
    project = ep.dist.name if ep.dist is not None else "recist-service"
    return f"pip install '{project}[{','.join(ep.extras)}]'"


def summary(doc: str | None) -> str:
    """A command's help line from its module docstring: the first line, usage removed."""
    first = (doc or "").strip().split("\n", 1)[0].strip()
    return _USAGE_PREFIX.sub("", first).rstrip(".")


def _module_source(module: str) -> str | None:
    """The source of ``module``, found without importing it or its parent packages."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for part in rest:
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(
                f"{spec.name}.{part}", list(spec.submodule_search_locations)
            )
        if spec is None or not isinstance(spec.loader, importlib.abc.InspectLoader):
            return None
        return spec.loader.get_source(spec.name)
    except (ImportError, OSError, ValueError, SyntaxError, UnicodeDecodeError):
        return None


def help_of(module: str) -> str | None:
    """The help line of a command module: its ``HELP`` string, else its docstring's summary,
    read from the source without running it (importing ``web.cli`` would load Flask).
    None when the module cannot be found."""
    source = _module_source(module)
    if source is None:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if (
            isinstance(target, ast.Name)
            and target.id == "HELP"
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            return value.value
    return summary(ast.get_docstring(tree))


def _load(ep: EntryPoint) -> ModuleType:
    return importlib.import_module(ep.module)


def build_parser(
    command: str | None = None, found: dict[str, EntryPoint] | None = None
) -> argparse.ArgumentParser:
    """The ``recist`` parser. Given the ``command`` about to run, only its module is imported
    (to add its arguments); without one, every installed command is listed by its help line
    and those whose extra is missing are named in the epilog."""
    found = discover() if found is None else found
    parser = argparse.ArgumentParser(
        prog="recist",
        description="RECIST 1.1 response assessment service",
        # the epilog's install lines are kept whole (a wrapped 'recist-service[x]' breaks)
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    if command in found:
        ep = found[command]
        module = _load(ep)
        text = getattr(module, "HELP", None) or summary(module.__doc__)
        sub_parser = sub.add_parser(command, help=text, description=text)
        sub_parser.set_defaults(_module=ep.module)
        register: Callable[[argparse.ArgumentParser], None] = module.register
        register(sub_parser)
        return parser
    unavailable: dict[str, list[str]] = {}
    for name, ep in found.items():
        text = None if missing_requirements(ep) else help_of(ep.module)
        if text is None:
            why = _install_hint(ep) if ep.extras else f"{ep.module} not found"
            unavailable.setdefault(why, []).append(name)
            continue
        sub.add_parser(name, help=text, description=text).set_defaults(_module=ep.module)
    if unavailable:
        parser.epilog = "not installed here:\n" + "\n".join(
            f"  {', '.join(names)}: {why}" for why, names in unavailable.items()
        )
    return parser


def _refusal(name: str, ep: EntryPoint) -> str | None:
    """One line saying why command ``name`` cannot run here, or None when it can."""
    missing = missing_requirements(ep)
    if missing:
        extras = ", ".join(f"[{extra}]" for extra in ep.extras)
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if missing[3:] else "")
        return (
            f"recist {name}: needs the {extras} extra, not installed here "
            f"(missing {named}): {_install_hint(ep)}"
        )
    try:
        _load(ep)
    except ImportError as exc:
        hint = f": {_install_hint(ep)}" if ep.extras else ""
        return f"recist {name}: cannot load {ep.module} ({exc}){hint}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recist`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list and not args_list[0].startswith("-") else None
    found = discover()
    if command in found:
        refusal = _refusal(command, found[command])
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 2
    parser = build_parser(command, found)
    args = parser.parse_args(args_list)
    module = importlib.import_module(args._module)
    run: Callable[[argparse.Namespace], int] = module.run
    try:
        return run(args)
    except KeyboardInterrupt:
        print("recist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

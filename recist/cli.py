"""The ``recist`` command line: the imperative shell around the engine.

This module (with :mod:`recist.jsonio` and :mod:`recist.__main__`) is the package's edge:
it reads files and standard streams. The engine modules never import it. Subcommands of
other packages (``imaging_io``, ``cdisc_io``, ``endpoints``, ``web``) register themselves
through :data:`SUBCOMMANDS`; each is imported only when its command runs, so ``recist
assess`` never pays for SimpleITK or Flask.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

# name -> (module, help). The module defines ``register(parser)`` that adds arguments and
# ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "assess": ("recist.cli_assess", "assess cases (RECIST 1.1) and print the results as JSON"),
    "measure": ("imaging_io.cli", "measure lesions in a DICOM series + segmentation"),
    "ingest": ("imaging_io.cli_ingest", "add a measured timepoint from a study to a case"),
    "import-sdtm": ("cdisc_io.cli_import", "build cases from SDTM TU/TR (+ ADSL/DM) CSVs"),
    "export-sdtm": ("cdisc_io.cli_export_sdtm", "write TU, TR and RS CSVs from cases"),
    "export-adam": ("cdisc_io.cli_export_adam", "write ADRS and ADTTE CSVs from cases"),
    "compare": ("cdisc_io.cli_compare", "compare engine responses with recorded RS"),
    "endpoints": ("endpoints.cli", "PFS/OS/DoR/local-failure analyses from cases"),
    "serve": ("web.cli", "run the web application with a production WSGI server"),
    "users": ("web.cli_users", "manage web users"),
    "audit": ("web.cli_audit", "verify the audit trail"),
    "demo-run": ("web.cli_demo", "seed the demo trial and serve it (what `make run` does)"),
}


def _package_available(module_name: str) -> bool:
    """Whether the top-level package of ``module_name`` is installed (without importing it)."""
    return importlib.util.find_spec(module_name.split(".")[0]) is not None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``recist`` parser; only ``command``'s module is imported to add its arguments,
    so a command never pays for the imports of the others."""
    parser = argparse.ArgumentParser(
        prog="recist", description="RECIST 1.1 response assessment service"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if not _package_available(module_name):
            continue
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name == command:
            module = importlib.import_module(module_name)
            register: Callable[[argparse.ArgumentParser], None] = module.register
            register(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recist`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(command)
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

"""The package's build; its metadata is in setup.cfg.

``RECIST_MYPYC=1`` builds the optional wheel whose pure engine core is compiled by mypyc
(``make mypyc``; README, "Benchmarks"). Without it the build is pure Python, as every
install made by ``make`` is.
"""

from __future__ import annotations

import os

from setuptools import setup

# The engine modules mypyc compiles. errors.py and settings.py stay interpreted: mypyc
# checks attribute types on assignment, and Settings turns its strings into enums after
# __init__, and safejson's JsonInputError (interpreted) sets the attributes of a
# compiled RecistError. jsonio.py (pydantic models) and the command line stay
# interpreted too; they hand each case to recist.contract.
MYPYC_MODULES = (
    "response",
    "lesions",
    "target",
    "non_target",
    "new_lesions",
    "overall",
    "baseline",
    "best_response",
    "pfs",
    "local_failure",
    "assessment",
    "irecist",
    "contract",
)


def _compiled() -> list:
    if os.environ.get("RECIST_MYPYC") != "1":
        return []
    from mypyc.build import mypycify  # mypy brings mypyc (the "test" extra)

    return mypycify([f"recist/{name}.py" for name in MYPYC_MODULES], opt_level="3")


setup(ext_modules=_compiled())

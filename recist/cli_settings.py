"""``recist settings [--profile NAME] [--case CASE] [--explain] [--json]``: the protocol
settings a case is assessed under.

Without ``--explain``: the settings as JSON, as every result echoes them. With
``--explain``: every setting, its value, where it came from (``default``: RECIST 1.1 /
FDA 2018; ``profile``: the named profile, ``--profile`` or the case's
``settings_profile``; ``case``: given in the case's ``settings``) and the rules it changes
(``docs/rules.md``), as a table, or as JSON with ``--json``. Bad settings exit with status
2 and one line naming the setting and the rule (R-PLAUS-SETTINGS).

Like ``cli_assess.py`` this is the package's edge (it reads files); it checks the settings
with the core alone (:class:`recist.settings.Settings`), so it runs without pydantic.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recist.errors import CaseInputError, RecistError
from recist.safejson import JsonInputError, read_cases
from recist.settings import ExplainedSetting, SettingsProfile, explain

HELP = "show the protocol settings; --explain: each one's value, source and rules"

EXIT_INPUT = 2


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=[p.value for p in SettingsProfile],
        default=None,
        help="a named set of conventions (settings_profile); the case's explicit settings "
        "still override it",
    )
    parser.add_argument(
        "--case",
        default=None,
        metavar="CASE",
        help="a case file (one case, JSON) whose settings to show, or -",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="every setting with its value, source (default, profile, case) and rules",
    )
    parser.add_argument(
        "--json", action="store_true", help="with --explain: JSON instead of a table"
    )


def _case_settings(path: str) -> tuple[dict[str, Any], str | None]:
    """The ``settings`` object of the one case in ``path``, and the case's subject.

    Raises
    ------
    JsonInputError
        The file cannot be read or is not JSON.
    CaseInputError
        The file holds more or fewer than one case, or the case or its settings is not a
        JSON object.
    """
    cases = read_cases(path)
    items = list(cases)
    if len(items) != 1:
        raise CaseInputError(f"--case takes one case; the file holds {len(items)}")
    _, value, error = items[0]
    if error is not None:
        raise error
    if not isinstance(value, dict):
        raise CaseInputError("a case must be a JSON object")
    subject = value.get("subject_id")
    subject = subject if isinstance(subject, str) and subject else None
    settings = value.get("settings", {})
    if not isinstance(settings, dict):
        raise CaseInputError("settings must be a JSON object", subject=subject, field="settings")
    return settings, subject


def _cell(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# A value wider than this (the eligibility rules' object) is written below the table.
MAX_CELL = 24


def format_explanation(explained: list[ExplainedSetting], profile: str | None) -> str:
    """The ``--explain`` table: setting, value, source, rules; then the values too wide for
    the table, and the profile's sources."""
    rows = [("setting", "value", "source", "rules")]
    wide = []
    for item in explained:
        cell = _cell(item.value)
        if len(cell) > MAX_CELL:
            wide.append(f"  {item.name}: {cell}")
            cell = "(below)"
        rows.append((item.name, cell, item.source.value, ", ".join(item.rules) or "—"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if wide:
        lines.append("")
        lines.append("values in full:")
        lines.extend(wide)
    referenced = [item for item in explained if item.reference is not None]
    if profile is not None and referenced:
        lines.append("")
        lines.append(f"profile {profile}: where each of its values comes from")
        lines.extend(f"  {item.name}: {item.reference}" for item in referenced)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    subject = None
    try:
        if args.case is not None:
            values, subject = _case_settings(args.case)
        settings, explained = explain(values, args.profile)
    except JsonInputError as exc:
        print(f"recist settings: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except RecistError as exc:
        where = f"{args.case}: " if args.case is not None else ""
        print(f"recist settings: {where}{exc.located(subject=subject)}", file=sys.stderr)
        return EXIT_INPUT
    profile = settings.settings_profile.value if settings.settings_profile is not None else None
    if not args.explain:
        print(json.dumps(settings.to_dict(), ensure_ascii=False, indent=2))
    elif args.json:
        out = {
            "settings_profile": profile,
            "case": args.case,
            "settings": [item.to_dict() for item in explained],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(format_explanation(explained, profile))
    return 0

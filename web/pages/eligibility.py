"""The protocol's eligibility rules on the trial settings form (setting ``eligibility``:
R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME, R-ELIG-SITE; docs/rules.md §12).

The form has one field per rule; the per-site limits are one line per site
(``liver: 70 mm`` or ``liver: 70 mm, 400 mL``) and the excluded sites a comma-separated
list. All fields blank: no eligibility rules. The engine's model checks the values
(``recist.jsonio.SettingsIn``, R-PLAUS-SETTINGS); this module only reads the text.
"""

from __future__ import annotations

import re
from typing import Any

from web.services import InvalidInput

# The form fields, each posted as ``s_elig_<name>``.
FIELDS = (
    "protocol",
    "max_lesions",
    "count_nodes",
    "max_diameter_mm",
    "max_volume_ml",
    "sites",
    "excluded_sites",
)

_LIMIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(mm|ml)\s*$", re.IGNORECASE)


def _number(raw: str, name: str, what: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(
            f"eligibility: {raw!r} is not {what}", field=f"settings.eligibility.{name}"
        ) from None


def _site_limits(text: str) -> dict[str, dict[str, float]]:
    """``liver: 70 mm`` / ``bone: 120 mm, 400 mL`` lines as ``sites``."""
    sites: dict[str, dict[str, float]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        site, colon, limits = line.partition(":")
        where = f"settings.eligibility.sites.{site.strip() or number}"
        if not colon or not site.strip() or not limits.strip():
            raise InvalidInput(
                f"eligibility, site limits line {number} ({line.strip()!r}): write "
                "'site: 70 mm' or 'site: 70 mm, 400 mL'",
                field="settings.eligibility.sites",
            )
        out: dict[str, float] = {}
        for part in limits.split(","):
            match = _LIMIT.match(part)
            if match is None:
                raise InvalidInput(
                    f"eligibility, site limits line {number}: {part.strip()!r} is not a limit "
                    "in mm or mL (e.g. '70 mm', '400 mL')",
                    field=where,
                )
            key = "max_diameter_mm" if match[2].lower() == "mm" else "max_volume_ml"
            if key in out:
                raise InvalidInput(
                    f"eligibility, site limits line {number}: two limits in "
                    f"{'mm' if key == 'max_diameter_mm' else 'mL'}",
                    field=where,
                )
            out[key] = float(match[1])
        if site.strip().lower() in sites:
            raise InvalidInput(
                f"eligibility, site limits line {number}: site {site.strip()!r} is given twice",
                field=where,
            )
        sites[site.strip().lower()] = out
    return sites


def eligibility_from_form(form: Any) -> dict[str, Any] | None:
    """The ``eligibility`` setting the form's fields give, or ``None`` when all the rules
    are blank (the protocol's name alone checks nothing)."""

    def typed(name: str) -> str:
        return str(form.get(f"s_elig_{name}", "") or "").strip()

    rules: dict[str, Any] = {}
    if typed("max_lesions"):
        raw = typed("max_lesions")
        if not raw.isdigit():
            raise InvalidInput(
                f"eligibility: {raw!r} is not a whole number of lesions",
                field="settings.eligibility.max_lesions",
            )
        rules["max_lesions"] = int(raw)
    for name, what in (
        ("max_diameter_mm", "a number of millimetres"),
        ("max_volume_ml", "a number of millilitres"),
    ):
        if typed(name):
            rules[name] = _number(typed(name), name, what)
    sites = _site_limits(str(form.get("s_elig_sites", "") or ""))
    if sites:
        rules["sites"] = sites
    excluded = [s.strip() for s in typed("excluded_sites").split(",") if s.strip()]
    if excluded:
        rules["excluded_sites"] = excluded
    if not rules:
        return None
    if typed("protocol"):
        rules["protocol"] = typed("protocol")
    if form.get("s_elig_count_nodes") != "on":
        rules["count_nodes"] = False
    return rules


def _mm(value: float) -> str:
    return f"{value:g}"


def eligibility_fields(rules: dict[str, Any] | None) -> dict[str, Any]:
    """The form's field values for stored rules (``None``: blank, nodes counted)."""
    rules = rules or {}
    lines = []
    for site, limits in (rules.get("sites") or {}).items():
        parts = []
        if limits.get("max_diameter_mm") is not None:
            parts.append(f"{_mm(limits['max_diameter_mm'])} mm")
        if limits.get("max_volume_ml") is not None:
            parts.append(f"{_mm(limits['max_volume_ml'])} mL")
        lines.append(f"{site}: {', '.join(parts)}")
    number = {
        name: "" if rules.get(name) is None else _mm(rules[name])
        for name in ("max_lesions", "max_diameter_mm", "max_volume_ml")
    }
    return {
        "protocol": rules.get("protocol") or "",
        **number,
        "count_nodes": rules.get("count_nodes", True),
        "sites": "\n".join(lines),
        "excluded_sites": ", ".join(rules.get("excluded_sites") or []),
    }


def typed_fields(form: Any) -> dict[str, Any]:
    """The form's field values as typed (shown again after a refusal)."""
    out: dict[str, Any] = {name: form.get(f"s_elig_{name}") or "" for name in FIELDS}
    out["count_nodes"] = form.get("s_elig_count_nodes") == "on"
    return out


def eligibility_summary(rules: dict[str, Any] | None) -> str:
    """One line for the settings list: the rules in words."""
    if not rules:
        return "none (RECIST 1.1 has no eligibility rules)"
    parts = []
    if rules.get("max_lesions") is not None:
        nodes = "" if rules.get("count_nodes", True) else ", nodes not counted"
        parts.append(f"at most {rules['max_lesions']} lesions{nodes}")
    if rules.get("max_diameter_mm") is not None:
        parts.append(f"each ≤ {_mm(rules['max_diameter_mm'])} mm")
    if rules.get("max_volume_ml") is not None:
        parts.append(f"each ≤ {_mm(rules['max_volume_ml'])} mL")
    for line in eligibility_fields(rules)["sites"].splitlines():
        site, _, limits = line.partition(": ")
        parts.append(f"{site} ≤ {limits.replace(', ', ' and ')}")
    if rules.get("excluded_sites"):
        parts.append("no " + ", ".join(rules["excluded_sites"]) + " lesions")
    named = f"{rules['protocol']}: " if rules.get("protocol") else ""
    return named + "; ".join(parts)


def eligibility_findings(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The protocol's eligibility breaches (R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME,
    R-ELIG-SITE) among a stored result's ``warnings``, for the trial's subject list: each
    ``{"rule", "lesion", "message"}``. Read as stored, never recomputed."""
    out = []
    for warning in (result or {}).get("warnings") or []:
        rule = warning.get("rule") if isinstance(warning, dict) else None
        if isinstance(rule, str) and rule.startswith("R-ELIG-"):
            out.append(
                {"rule": rule, "lesion": warning.get("lesion"), "message": warning.get("message")}
            )
    return out

"""Two central reads of one subject side by side, for the adjudicator: which non-targets
and which new lesions differ between them, and the visits whose two reads describe
different scan dates (the target-by-target table is ``web.pages.central.compare_reads``).

Lesions are matched by id: each reader names the lesions of their own read, and the
worksheet proposes the same ids (T1…, NT1…, NL01…), so an id in one read and not in the
other is a lesion one reader saw and the other did not.
"""

from __future__ import annotations

from typing import Any


def _visits(cases: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for case in cases:
        codes += [tp["id"] for tp in case.get("timepoints", []) if tp["id"] not in codes]
    return codes


def compare_non_targets(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per follow-up visit and non-target lesion of either read: both states (``None``
    where a read has no such visit or lesion) and whether they differ (R-NT-*)."""
    if len(cases) != 2:
        return []
    by_tp = [{tp["id"]: tp for tp in case.get("timepoints", [])} for case in cases]
    lesions: list[str] = []
    for case in cases:
        lesions += [
            le["id"]
            for le in case.get("lesions", [])
            if le.get("kind") != "target" and le["id"] not in lesions
        ]
    rows = []
    for code in _visits(cases):
        for lesion in lesions:
            states = [(side.get(code) or {}).get("non_targets", {}).get(lesion) for side in by_tp]
            if states == [None, None]:
                continue
            rows.append(
                {
                    "timepoint": code,
                    "lesion": lesion,
                    "reads": states,
                    "differ": states[0] != states[1],
                }
            )
    return rows


def _first_seen(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each new lesion of a read: the visit that first shows it, its site and whether it
    was equivocal there, and whether any later visit shows it unequivocal (R-NEW-2)."""
    seen: dict[str, dict[str, Any]] = {}
    for tp in case.get("timepoints", [])[1:]:
        for item in tp.get("new_lesions", []):
            entry = seen.setdefault(
                item["id"],
                {
                    "visit": tp["id"],
                    "site": item.get("site", ""),
                    "equivocal": bool(item.get("equivocal")),
                    "confirmed_at": None,
                },
            )
            if not item.get("equivocal") and entry["confirmed_at"] is None:
                entry["confirmed_at"] = tp["id"]
    return seen


def compare_new_lesions(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every new lesion of either read (R-NEW-1, R-NEW-2): the visit of first appearance in
    each read (``None``: that read does not have it), and what differs in words: only in
    one read, first seen at different visits, a different site, or unequivocal at
    different visits."""
    if len(cases) != 2:
        return []
    sides = [_first_seen(case) for case in cases]
    ids: list[str] = []
    for side in sides:
        ids += [i for i in side if i not in ids]
    rows = []
    for new_id in ids:
        pair = [side.get(new_id) for side in sides]
        if pair[0] is None or pair[1] is None:
            slot = 1 if pair[1] is None else 2
            difference = f"only in read {slot}"
        elif pair[0]["visit"] != pair[1]["visit"]:
            difference = (
                f"first seen at {pair[0]['visit']} in read 1, at {pair[1]['visit']} in read 2"
            )
        elif pair[0]["site"] != pair[1]["site"]:
            difference = f"site {pair[0]['site']} in read 1, {pair[1]['site']} in read 2"
        elif pair[0]["confirmed_at"] != pair[1]["confirmed_at"]:
            difference = (
                f"unequivocal at {pair[0]['confirmed_at'] or 'no visit'} in read 1, at "
                f"{pair[1]['confirmed_at'] or 'no visit'} in read 2 (R-NEW-2)"
            )
        else:
            difference = ""
        rows.append(
            {
                "lesion": new_id,
                "reads": pair,
                "differ": bool(difference),
                "difference": difference,
            }
        )
    return rows


def scan_date_warnings(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One warning per visit that both reads have whose scan dates differ: the visit's
    date, or the scan date either read gives a lesion of it (``scan_dates``, else the
    visit's date). Two dates for one visit mean the readers may not have read the same
    scans, which the adjudicator should know before comparing their sizes."""
    if len(cases) != 2:
        return []
    by_tp = [{tp["id"]: tp for tp in case.get("timepoints", [])} for case in cases]
    out = []
    for code in _visits(cases):
        found = [side.get(code) for side in by_tp]
        pair: list[dict[str, Any]] = [tp for tp in found if tp is not None]
        if len(pair) != 2:
            continue
        dates = [tp["date"] for tp in pair]
        lesions = sorted(set(pair[0].get("scan_dates", {})) | set(pair[1].get("scan_dates", {})))
        differing = []
        for lesion in lesions:
            seen = [tp.get("scan_dates", {}).get(lesion, tp["date"]) for tp in pair]
            if seen[0] != seen[1]:
                differing.append({"lesion": lesion, "dates": seen})
        if dates[0] == dates[1] and not differing:
            continue
        parts = []
        if dates[0] != dates[1]:
            parts.append(f"read 1 dates it {dates[0]}, read 2 {dates[1]}")
        for item in differing:
            parts.append(
                f"{item['lesion']} scanned {item['dates'][0]} in read 1, {item['dates'][1]} "
                "in read 2"
            )
        out.append(
            {
                "timepoint": code,
                "dates": dates,
                "lesions": differing,
                "message": f"{code}: the reads describe different scans — " + "; ".join(parts),
            }
        )
    return out

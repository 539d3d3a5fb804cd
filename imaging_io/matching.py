"""Which lesion of a case a measured segment belongs to: the one matcher of ``recist
ingest`` (:mod:`imaging_io.ingest`) and of the web upload (``web.services.uploads``).

A *segment* is one measured lesion of a study: a SEG segment, an RTSTRUCT ROI or a TID
1500 measurement group. A *lesion* is a baseline lesion of the case (``id``, ``site``,
``kind``, ``nodal``, as in docs/contracts.md).

1. **By name.** A segment goes to the lesion its tracking identifier names, else the one
   its label names: first exactly, then comparing ids loosely (:func:`lesion_key`: ``t1``,
   ``T1`` and ``T01`` are one lesion). Several segments may name one lesion: the pieces of
   a split lesion (R-SPLIT).
2. **Checked against anatomy.** A name can be wrong (a tracking id typed on the wrong
   segment), so each match by name is compared with what the segment says of itself:

   - a segment that is a lymph node (imaging_io's ``nodal``: its label or coded type names
     a node, :func:`recist.lesions.names_a_node`) on a lesion that is not nodal, or a
     segment whose label names another organ (``lung lesion``) on a nodal lesion, would be
     followed on the wrong axis (R-MEAS-2);
   - a label naming one organ on a lesion whose site names another (``lung lesion`` on a
     ``liver`` target);
   - a label naming another lesion of the case than the tracking id does.

   Only what is known is checked: a label that names no organ (``Segment 1``, an SR's
   ``T3``) or a site that names none (``segment VII``) passes. imaging_io's ``nodal`` is
   evidence that a segment *is* a node; ``False`` only means nothing says so, and an SR
   measurement group has no such flag at all. Such a mismatch is a :class:`Conflict`: it
   is never matched, and the caller decides (the web lists it for the reader to resolve;
   ``recist ingest`` refuses it).
3. **By anatomy (optional).** With ``by_anatomy=True`` a segment that names no lesion goes
   to a *target* only when that is unambiguous: it fits exactly one target left (its label
   names that target's organ, or it is a node and the target the one nodal target left)
   and no other such segment fits that target. Non-targets are never matched by anatomy:
   one non-target may stand for many lesions of an organ, and a new lesion of that organ
   would look the same. Nothing is ever matched by position.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recist.baseline import BONE_WORDS
from recist.lesions import names_a_node

NODE = "lymph node"
"""The organ of every lymph node, wherever it lies (R-SEL-2: all nodes are one organ)."""


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{'|'.join(alternatives)})\b", re.IGNORECASE)


# Organs a site or a segment label may name, by the words (nouns and adjectives) used for
# them. Deliberately short: a word missing here only means a conflict is not seen, never
# that one is invented. Lobes, walls and "soft tissue" are left out: they belong to
# several organs.
_ORGANS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lung", _words("lungs?", "pulmonary", "intrapulmonary")),
    ("liver", _words("liver", "hepatic", "intrahepatic")),
    ("bone", _words(*sorted(BONE_WORDS))),
    ("brain", _words("brain", "cerebral", "cerebellar", "cerebellum", "intracranial")),
    ("adrenal", _words("adrenals?")),
    ("kidney", _words("kidneys?", "renal")),
    ("spleen", _words("spleen", "splenic")),
    ("pancreas", _words("pancreas", "pancreatic")),
    ("pleura", _words("pleura", "pleural")),
    ("peritoneum", _words("peritoneum", "peritoneal", "omentum", "omental")),
    ("breast", _words("breasts?")),
    ("skin", _words("skin", "cutaneous")),
    ("ovary", _words("ovary", "ovaries", "ovarian")),
    ("prostate", _words("prostate", "prostatic")),
    ("bladder", _words("(?<!gall )bladder")),
    ("stomach", _words("stomach", "gastric")),
    ("thyroid", _words("thyroid")),
    ("oesophagus", _words("o?esophagus", "o?esophageal")),
)


def organs_named(text: str | None) -> frozenset[str]:
    """The organs ``text`` (a lesion's site or a segment's label) names: ``{"lymph node"}``
    for a node wherever it lies (``hilar lymph node``), else the organs of
    :data:`_ORGANS` it names (``left lung`` → ``{"lung"}``), else none."""
    if not text:
        return frozenset()
    if names_a_node(text):
        return frozenset({NODE})
    return frozenset(organ for organ, words in _ORGANS if words.search(text))


def lesion_key(text: str) -> str:
    """A lesion id compared loosely: ``t1``, ``T1`` and ``T01`` are the same lesion
    (letters ignoring case, then the number ignoring leading zeros); other text is
    compared ignoring case and surrounding blanks."""
    match = re.fullmatch(r"([A-Za-z]+)0*(\d+)", text.strip())
    return f"{match.group(1).upper()}{int(match.group(2))}" if match else text.strip().upper()


@dataclass(frozen=True)
class Segment:
    """What the matcher knows of one measured lesion.

    Attributes
    ----------
    label
        The segment label, ROI name, or (an SR measurement group) its tracking identifier.
    tracking_id
        The tracking identifier, when it is not the label.
    nodal
        Whether the segment says it is a lymph node (imaging_io's ``nodal``: its label or
        coded type names one). ``False`` means only that nothing says so.
    """

    label: str
    tracking_id: str | None = None
    nodal: bool = False

    @classmethod
    def of(cls, measured: Mapping[str, Any]) -> Segment:
        """The segment of one lesion of the ``recist measure`` JSON."""
        tracking = measured.get("tracking_id")
        return cls(
            str(measured.get("label") or ""),
            str(tracking) if tracking else None,
            bool(measured.get("nodal")),
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The names that may be a lesion id, tracking identifier first."""
        return tuple(n for n in (self.tracking_id, self.label) if n and n.strip())

    def describe(self) -> str:
        """``'lung lesion' (tracking id 'T3')`` for a message."""
        if self.tracking_id and self.tracking_id != self.label:
            return f"{self.label!r} (tracking id {self.tracking_id!r})"
        return repr(self.label)


@dataclass(frozen=True)
class Conflict:
    """A segment whose name says one lesion while its anatomy says otherwise."""

    lesion_id: str
    segment: int  # index into the segments matched
    reason: str  # "its label names lung while T3 (lymph node) is nodal (R-MEAS-2)"


@dataclass(frozen=True)
class Matching:
    """Where each segment went.

    Attributes
    ----------
    lesions
        Lesion id → the indexes of the segments matched to it, in segment order (several:
        the pieces of a split lesion, R-SPLIT). A lesion nothing matched is absent.
    how
        Segment index → ``"by its id"`` or ``"by site: <site>"``.
    conflicts
        Matches by name that the anatomy contradicts; those segments are in neither
        ``lesions`` nor ``unmatched``.
    unmatched
        Indexes of the segments that went nowhere.
    """

    lesions: dict[str, list[int]] = field(default_factory=dict)
    how: dict[int, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)

    def conflicted(self) -> set[str]:
        """The ids of the lesions some segment names in conflict."""
        return {c.lesion_id for c in self.conflicts}


def _is_target(lesion: Mapping[str, Any]) -> bool:
    return bool(lesion.get("kind", "target") == "target")


def lesion_anatomy(lesion: Mapping[str, Any]) -> frozenset[str]:
    """The organs of a case lesion: a node when ``nodal`` or its site names one (as the
    engine counts organs, R-SEL-2), else the organs its site names."""
    if lesion.get("nodal"):
        return frozenset({NODE})
    return organs_named(str(lesion.get("site") or ""))


def segment_anatomy(segment: Segment) -> frozenset[str]:
    """The organs of a segment: a node when it says so, else the organs its label names."""
    return frozenset({NODE}) if segment.nodal else organs_named(segment.label)


def conflict_reason(lesion: Mapping[str, Any], segment: Segment) -> str | None:
    """Why ``segment`` cannot be ``lesion`` by its anatomy, or ``None`` when what is known
    of both agrees (or nothing is known of one of them)."""
    found, expected = segment_anatomy(segment), lesion_anatomy(lesion)
    if not found or not expected or found & expected:
        return None
    where = f"{lesion['id']} ({lesion.get('site') or 'no site'})"
    if NODE in found:
        return f"it is a lymph node while {where} is not nodal (R-MEAS-2)"
    names = ", ".join(sorted(found))
    if NODE in expected:
        return f"its label names {names} while {where} is nodal (R-MEAS-2)"
    return f"its label names {names} while the site of {where} does not"


def fits_anatomy(lesion: Mapping[str, Any], segment: Segment) -> bool:
    """Whether ``segment``'s anatomy points at ``lesion``: both nodes, or the label names
    the lesion's organ (or holds its whole site, ``mediastinum`` in ``mediastinum mass``)."""
    found, expected = segment_anatomy(segment), lesion_anatomy(lesion)
    if found & expected:
        return True
    if NODE in found or NODE in expected:
        return False
    site = str(lesion.get("site") or "").strip()
    return bool(site) and re.search(rf"\b{re.escape(site)}\b", segment.label, re.I) is not None


class _Ids:
    """The case's lesion ids, looked up exactly and then loosely."""

    def __init__(self, lesions: Sequence[Mapping[str, Any]]) -> None:
        self.exact = {str(le["id"]) for le in lesions}
        loose: dict[str, list[str]] = defaultdict(list)
        for le in lesions:
            loose[lesion_key(str(le["id"]))].append(str(le["id"]))
        # Two ids of one key (``T1`` and ``T01`` in one case) match only exactly.
        self.loose = {key: ids[0] for key, ids in loose.items() if len(ids) == 1}

    def named(self, name: str) -> str | None:
        return name if name in self.exact else self.loose.get(lesion_key(name))

    def first(self, segment: Segment) -> str | None:
        for name in segment.names:
            if name in self.exact:
                return name
        for name in segment.names:
            if (hit := self.loose.get(lesion_key(name))) is not None:
                return hit
        return None


def match_to_lesions(
    lesions: Sequence[Mapping[str, Any]],
    segments: Sequence[Segment],
    *,
    by_anatomy: bool = False,
) -> Matching:
    """Match ``segments`` to the case's ``lesions`` (the module docstring gives the rules).

    Parameters
    ----------
    lesions
        The case's lesions (``id``, ``site``, ``kind``, ``nodal``).
    segments
        The measured segments, in study order.
    by_anatomy
        Also match a segment that names no lesion to the one target its anatomy fits,
        when unambiguous (the web upload, where a reader checks every pre-filled value).

    Returns
    -------
    Matching
        Segments by lesion, how each was matched, the conflicts and the unmatched.
    """
    ids = _Ids(lesions)
    by_id = {str(le["id"]): le for le in lesions}
    out = Matching()
    anonymous: list[int] = []
    for index, segment in enumerate(segments):
        lesion_id = ids.first(segment)
        if lesion_id is None:
            anonymous.append(index)
            continue
        reason = conflict_reason(by_id[lesion_id], segment)
        other = ids.named(segment.label) if segment.tracking_id else None
        if reason is None and other is not None and other != lesion_id:
            reason = f"its label names lesion {other} while its tracking id names {lesion_id}"
        if reason is not None:
            out.conflicts.append(Conflict(lesion_id, index, reason))
            continue
        out.lesions.setdefault(lesion_id, []).append(index)
        out.how[index] = "by its id"
    if by_anatomy:
        # A lesion some segment names in conflict waits for the reader, and so does the
        # segment: the anatomy must not quietly settle what the names dispute.
        busy = set(out.lesions) | out.conflicted()
        left = [le for le in lesions if _is_target(le) and str(le["id"]) not in busy]
        fits = {i: [le for le in left if fits_anatomy(le, segments[i])] for i in anonymous}
        for index in list(anonymous):
            if len(fits[index]) != 1:
                continue
            lesion = fits[index][0]
            rivals = sum(lesion in fits[other] for other in anonymous)
            if rivals == 1 and str(lesion["id"]) not in out.lesions:
                out.lesions[str(lesion["id"])] = [index]
                out.how[index] = f"by site: {lesion.get('site')}"
                anonymous.remove(index)
    out.unmatched.extend(anonymous)
    return out

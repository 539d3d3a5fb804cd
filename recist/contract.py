"""The contract's JSON (docs/contracts.md), once validated, into the engine's objects, and
the engine's results back into the contract's JSON.

``recist.jsonio`` owns the contract's models and validation: a case reaches this module as
the plain dicts and lists its validator gives (keys not given are absent; dates are
``date``), so reading a case builds no model objects on the way. Nothing here validates
structure again; what is checked here is what the models cannot see (a target value's
kind, sizes at the engine's precision, a new lesion's listings, dates after ``today``).
The module has no pydantic in it, so ``make mypyc`` compiles it with the engine.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from recist.assessment import CaseResult, TimepointResult, assess
from recist.best_response import BestResponse
from recist.errors import CaseInputError, RecistError
from recist.irecist import (
    IBestResponse,
    IrecistResult,
    IrecistTimepointResult,
    NewLesionCategory,
    NewLesionRecord,
    irecist_timepoint,
)
from recist.lesions import (
    MAX_SIZE_MM,
    UNITS_PER_MM,
    Case,
    Lesion,
    LesionKind,
    NewLesion,
    NonTargetState,
    TargetState,
    TargetValue,
    Timepoint,
    date_problem,
    length_to_mm,
    mm_to_length,
)
from recist.pfs import PfsReason
from recist.response import NewLesionStatus, Response
from recist.settings import Criteria, Settings

TARGET_WORDS = {
    "too_small": TargetState.TOO_SMALL,
    "absent": TargetState.ABSENT,
    "not_evaluated": TargetState.NOT_EVALUATED,
}
TARGET_VALUE_HELP = (
    "a number of mm, 'too_small', 'absent', 'not_evaluated', {\"fragments\": [mm, …]} or "
    '{"merged_into": "T1"}'
)
# A new lesion's size takes the targets' words (I-NEW-4).
NEW_SIZE_WORDS = TARGET_WORDS

# Target values already built, by their raw JSON value: a TargetValue is immutable, and a
# batch repeats the same few hundred sizes. Numbers equal to 0 or 1 are never stored, so
# that ``true``/``false`` (equal to 1/0 in Python) always take the checked path.
_TARGET_CACHE: dict[Any, TargetValue] = {
    word: TargetValue(state) for word, state in TARGET_WORDS.items()
}
_TARGET_CACHE_MAX = 20_000


def _target_value(raw: Any) -> TargetValue:
    kind = type(raw)
    if (kind is float or kind is int) and 0 <= raw <= MAX_SIZE_MM:  # the common case, fast
        value = TargetValue(TargetState.MEASURED, mm_to_length(raw))
        if raw != 0 and raw != 1:
            if len(_TARGET_CACHE) >= _TARGET_CACHE_MAX:
                _TARGET_CACHE.clear()
                _TARGET_CACHE.update({w: TargetValue(s) for w, s in TARGET_WORDS.items()})
            _TARGET_CACHE[raw] = value
        return value
    if isinstance(raw, bool):
        raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")
    if isinstance(raw, int | float):
        if raw < 0:
            raise CaseInputError(f"negative size {raw!r} mm; a size must be ≥ 0 mm")
        return TargetValue(TargetState.MEASURED, mm_to_length(raw))
    if isinstance(raw, str):
        state = TARGET_WORDS.get(raw)
        if state is None:
            raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")
        return TargetValue(state)
    if isinstance(raw, dict) and set(raw) == {"fragments"}:
        parts = raw["fragments"]
        if not isinstance(parts, list) or not parts:
            raise CaseInputError("fragments must be a non-empty list of sizes in mm (R-SPLIT)")
        sizes = []
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, int | float) or part < 0:
                raise CaseInputError(f"fragment size {part!r} is not a number ≥ 0 mm (R-SPLIT)")
            sizes.append(mm_to_length(part))
        return TargetValue(TargetState.FRAGMENTS, fragments=tuple(sizes))
    if isinstance(raw, dict) and set(raw) == {"merged_into"}:
        into = raw["merged_into"]
        if not isinstance(into, str) or not into:
            raise CaseInputError("merged_into must name a target lesion id (R-MERGE)")
        return TargetValue(TargetState.MERGED, merged_into=into)
    raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")


def target_value(raw: Any) -> TargetValue:
    """One target value of the contract (a size in mm, a word, fragments or a merge) as
    the engine's :class:`TargetValue`, at the engine's precision (R-EXACT), refusing what
    is not one (R-PLAUS-SIZE, R-SPLIT, R-MERGE). Every way in stores what this returns."""
    return _target_value(raw)


def target_to_json(value: TargetValue) -> Any:
    """A :class:`TargetValue` back to its contract form (sizes in mm): the canonical value
    that is stored, shown and audited."""
    state = value.state
    if state is TargetState.MEASURED:
        return None if value.size is None else value.size / UNITS_PER_MM
    if state is TargetState.FRAGMENTS:
        return {"fragments": [part / UNITS_PER_MM for part in value.fragments]}
    if state is TargetState.MERGED:
        return {"merged_into": value.merged_into}
    return state.value


def _targets(raw: dict[str, Any], tp_id: str) -> dict[str, TargetValue]:
    """A timepoint's target values; the error names the first bad one."""
    cache = _TARGET_CACHE
    try:
        # Fast path: every value seen before (a KeyError or an unhashable dict falls back).
        return {lesion_id: cache[value] for lesion_id, value in raw.items()}
    except (KeyError, TypeError):
        pass
    targets = {}
    for lesion_id, value in raw.items():
        try:
            targets[lesion_id] = _target_value(value)
        except CaseInputError as error:
            raise error.located(timepoint=tp_id, lesion=lesion_id, field="targets") from None
    return targets


# Settings already built, by the values given (a batch usually shares one protocol).
_SETTINGS_CACHE: dict[tuple[tuple[str, str], ...], Settings] = {}


def _settings(raw: dict[str, Any]) -> Settings:
    # By each value's repr: -0.0 == 0.0, but the result's settings would print
    # differently; the eligibility rules (nested dicts) print as they were given.
    key = tuple([(name, repr(value)) for name, value in raw.items()])
    settings = _SETTINGS_CACHE.get(key)
    if settings is None:
        settings = Settings.from_dict(raw)
        if len(_SETTINGS_CACHE) >= 256:
            _SETTINGS_CACHE.clear()
        _SETTINGS_CACHE[key] = settings
    return settings


# Lesions already built, by their fields as given: a Lesion is immutable, and the cases
# of a trial declare the same lesions (T1 liver target…) over and over.
_LESION_CACHE: dict[tuple[tuple[str, Any], ...], Lesion] = {}
_LESION_KINDS = {kind.value: kind for kind in LesionKind}
_NON_TARGET_STATES = {state.value: state for state in NonTargetState}


def _lesions(raw: list[dict[str, Any]]) -> tuple[Lesion, ...]:
    cache = _LESION_CACHE
    lesions = []
    for le in raw:
        key = tuple(le.items())
        lesion = cache.get(key)
        if lesion is None:
            get = le.get
            lesion = Lesion(
                le["id"],
                get("site", ""),
                _LESION_KINDS[le["kind"]],
                get("nodal", False),
                get("treated_on"),
                get("treatment"),
                get("modality"),
                get("slice_thickness_mm"),
                get("volume_ml"),
            )
            if len(cache) >= 20_000:
                cache.clear()
            cache[key] = lesion
        lesions.append(lesion)
    return tuple(lesions)


def _new_size(tp_id: str, n: dict[str, Any], nodal: bool) -> float | str | None:
    """A new lesion's size: ``size_mm``, or for a node ``short_axis_mm`` (its older name);
    both given, they must agree."""
    short_axis = n.get("short_axis_mm")
    size: float | str | None = n.get("size_mm")  # checked by the model's validator
    if nodal and short_axis is not None:
        if size is not None and size != short_axis:
            raise CaseInputError(
                f"size_mm {size!r} and short_axis_mm {short_axis!r} differ; a node's "
                "size is its short axis: give one of them",
                timepoint=tp_id,
                lesion=n["id"],
                field="new_lesions",
            )
        return short_axis  # type: ignore[no-any-return]
    return size


def _recist_new_lesions(tp_id: str, news: list[dict[str, Any]]) -> tuple[NewLesion, ...]:
    """RECIST 1.1's new lesions of a timepoint (R-NEW-1 reads a node's size)."""
    out = []
    for n in news:
        nodal = n.get("nodal", False)
        size = _new_size(tp_id, n, nodal)
        category = n.get("category")
        state = n.get("state")
        if category is not None or state is not None or isinstance(size, str):
            what = (
                "category"
                if category is not None
                else "state"
                if state is not None
                else f"size_mm {size!r}"
            )
            raise CaseInputError(
                f"{what} belongs to iRECIST's follow-up of new lesions (I-NEW-4): set the "
                "setting criteria to 'irecist', or leave it out (RECIST 1.1 lists a new lesion "
                "when it is seen)",
                timepoint=tp_id,
                lesion=n["id"],
                field="new_lesions",
                rule="I-NEW-4",
            )
        out.append(
            NewLesion(
                n["id"],
                n.get("site", ""),
                n.get("equivocal", False),
                nodal,
                size if nodal else n.get("short_axis_mm"),
            )
        )
    return tuple(out)


def _same_site(one: Any, other: Any) -> bool:
    return str(one).strip().lower() == str(other).strip().lower()


def _irecist_timepoints(timepoints: list[dict[str, Any]]) -> list[Timepoint]:
    """The timepoints of an iRECIST case: each new lesion's listings as records (I-NEW-4).

    A later listing that leaves out ``site`` or ``nodal`` keeps those of the lesion's first
    listing; one that gives others is refused.
    """
    states = _NON_TARGET_STATES
    first: dict[str, dict[str, Any]] = {}
    short_axes: dict[str, float] = {}  # each nodal new lesion's last measured short axis
    out: list[Timepoint] = []
    for tp in timepoints:
        tp_id = tp["id"]
        records = []
        for n in tp.get("new_lesions", ()):
            seen = first.setdefault(n["id"], n)
            site, nodal = n.get("site", ""), n.get("nodal", False)
            if seen is not n:
                for name, mine, theirs in (
                    ("site", site, seen.get("site", "")),
                    ("nodal", nodal, seen.get("nodal", False)),
                ):
                    same = _same_site(mine, theirs) if name == "site" else mine == theirs
                    if name in n and not same:
                        raise CaseInputError(
                            f"{name} {mine!r} differs from the first listing of this new lesion "
                            f"({theirs!r}); a new lesion keeps its site and nodal flag (I-NEW-4)",
                            timepoint=tp_id,
                            lesion=n["id"],
                            field="new_lesions",
                            rule="I-NEW-4",
                        )
                site, nodal = seen.get("site", ""), seen.get("nodal", False)
            size = _new_size(tp_id, n, nodal)
            category = n.get("category")
            state = n.get("state")
            try:
                records.append(
                    NewLesionRecord(
                        n["id"],
                        site,
                        nodal,
                        n.get("equivocal", False),
                        NewLesionCategory(category) if category is not None else None,
                        None
                        if size is None
                        else TargetValue(NEW_SIZE_WORDS[size])
                        if isinstance(size, str)
                        else TargetValue(TargetState.MEASURED, mm_to_length(size)),
                        states[state] if state is not None else None,
                    )
                )
            except CaseInputError as error:
                raise error.located(timepoint=tp_id, field="new_lesions") from None
        out.append(
            irecist_timepoint(
                tp_id,
                tp["date"],
                _targets(tp.get("targets", _EMPTY), tp_id),
                {k: states[v] for k, v in tp.get("non_targets", _EMPTY).items()},
                records,
                dict(tp.get("scan_dates", _EMPTY)),
                dict(short_axes),
            )
        )
        for record in records:
            if record.nodal and record.size is not None and record.size.size is not None:
                short_axes[record.id] = length_to_mm(record.size.size)
    return out


_EMPTY: dict[str, Any] = {}  # a key not given (never written to)


def _convert(raw: dict[str, Any]) -> Case:
    lesions = _lesions(raw["lesions"])
    settings = _settings(raw.get("settings", _EMPTY))
    states = _NON_TARGET_STATES
    empty = _EMPTY
    raw_timepoints: list[dict[str, Any]] = raw["timepoints"]  # typed: native dict operations
    if settings.criteria is Criteria.IRECIST:
        timepoints = tuple(_irecist_timepoints(raw_timepoints))
    else:
        built = []
        for tp in raw_timepoints:
            tp_id: str = tp["id"]
            non_targets: dict[str, str] = tp.get("non_targets", empty)
            news: list[dict[str, Any]] | None = tp.get("new_lesions")
            built.append(
                Timepoint(
                    tp_id,
                    tp["date"],
                    _targets(tp.get("targets", empty), tp_id),
                    {k: states[v] for k, v in non_targets.items()},
                    _recist_new_lesions(tp_id, news) if news else (),
                    dict(tp.get("scan_dates", empty)),
                )
            )
        timepoints = tuple(built)
    return Case(
        raw["subject_id"],
        lesions,
        timepoints,
        settings,
        raw.get("arm"),
        raw.get("randomized_on"),
        raw.get("died_on"),
        raw.get("new_therapy_on"),
        raw.get("last_known_alive_on"),
        raw.get("reader"),
        raw.get("accepted"),
    )


def iso_date_text(value: Any) -> Any:
    """Dates are ISO strings (YYYY-MM-DD); refuse numbers that pydantic would take as
    Unix timestamps (``recist.jsonio``'s validator of every date)."""
    if isinstance(value, str | date):
        return value
    raise ValueError("not a date (YYYY-MM-DD)")


def site_text(value: str) -> str:
    """A site given is a word: an empty or blank site would put the lesion in no organ
    (the per-organ count of targets, R-SEL-2, could not see it). ``recist.jsonio``'s
    validator of every site."""
    if not value.strip():
        raise ValueError("not a site; name the lesion's organ or site (e.g. 'liver')")
    return value


def keys_in(value: Any) -> int:
    """The object keys in a validated JSON value, at every depth."""
    if type(value) is dict:
        return len(value) + sum([keys_in(item) for item in value.values()])
    if type(value) is list:
        return sum([keys_in(item) for item in value])
    return 0


def keys_given(raw: dict[str, Any]) -> int:
    """How many object keys the JSON text of a validated case held, as validation kept
    them (``recist.jsonio``'s validator adds no defaults): a key given twice in one
    object counts once (the parser keeps the last). :func:`keys_in` of the case, walking
    only where a valid case can hold objects (a third of its time, on the batch path; a
    test holds the two equal). Here, not in ``recist.jsonio``, so that the compiled core
    (``make mypyc``) compiles it."""
    count = len(raw) + keys_in(raw.get("settings"))
    # Typed locals: the compiled core then uses its own list and dict operations.
    lesions: list[dict[str, Any]] = raw["lesions"]
    for lesion in lesions:
        count += len(lesion)
    timepoints: list[dict[str, Any]] = raw["timepoints"]
    for tp in timepoints:
        count += len(tp)
        targets: dict[str, Any] | None = tp.get("targets")
        if targets:
            for value in targets.values():
                count += 1 + len(value) if type(value) is dict else 1
        non_targets: dict[str, Any] | None = tp.get("non_targets")
        if non_targets is not None:
            count += len(non_targets)
        scan_dates: dict[str, Any] | None = tp.get("scan_dates")
        if scan_dates is not None:
            count += len(scan_dates)
        news: list[dict[str, Any]] | None = tp.get("new_lesions")
        if news is not None:
            for new in news:
                count += len(new)
    return count


def check_not_after(case: Case, today: date) -> None:
    """R-PLAUS-DATE: refuse any date of the case after ``today`` (a clock the caller
    owns: the CLI's ``--today``, the web's clock), naming where it is."""
    if case.date_range()[1] <= today:
        return  # the common case: nothing to locate
    for name, when, where in case.dates():
        problem = date_problem(when, today)
        if problem is not None:
            raise CaseInputError(
                problem, subject=case.subject_id, field=name, rule="R-PLAUS-DATE", **where
            )


def case_of(raw: dict[str, Any], today: date | None = None) -> Case:
    """The engine's :class:`Case` of a validated case (the plain dicts of
    ``recist.jsonio``'s validator), refusing dates after ``today`` (R-PLAUS-DATE)."""
    try:
        case = _convert(raw)
    except CaseInputError as error:
        raise error.located(subject=raw["subject_id"]) from None
    if today is not None:
        check_not_after(case, today)
    return case


# The settings' dicts already made, by the identity of the Settings (the one object
# _settings gives for one protocol): hashing a Settings hashes its every field, in
# interpreted code. The Settings is held beside its dict, so its id is never reused
# while the entry lives.
_SETTINGS_DICTS: dict[int, tuple[Settings, dict[str, Any]]] = {}


def _settings_dict(settings: Settings) -> dict[str, Any]:
    """The settings as a fresh dict (cached: a batch usually shares one protocol; the
    values are immutable scalars, so a shallow copy is a fresh result)."""
    entry = _SETTINGS_DICTS.get(id(settings))
    if entry is None or entry[0] is not settings:
        if len(_SETTINGS_DICTS) >= 64:
            _SETTINGS_DICTS.clear()
        entry = _SETTINGS_DICTS[id(settings)] = (settings, settings.to_dict())
    return dict(entry[1])


def _mm(length: int | None) -> float | None:
    return None if length is None else length_to_mm(length)


def _best(best: BestResponse) -> dict[str, Any]:
    return {
        "response": _CODES[best.response],
        "timepoint": best.timepoint,
        "reasons": list(best.reasons),
    }


# A response, new-lesion or PFS code as its JSON string (``None`` stays ``None``): a
# look-up is native in the compiled core, an enum's ``.value`` an interpreted property.
_CODES: dict[Any, str | None] = {
    None: None,
    **{code: code.value for code in Response},
    **{code: code.value for code in NewLesionStatus},
    **{code: code.value for code in PfsReason},
}


def timepoint_to_json(tp: TimepointResult) -> dict[str, Any]:
    """One timepoint's result in the contract's shape (sizes in mm)."""
    codes = _CODES
    if tp.overall_response is not None and tp.partial_sum is None:  # a follow-up, complete
        return {
            "id": tp.id,
            "date": tp.date.isoformat(),
            "sum_mm": None if tp.sum is None else tp.sum / UNITS_PER_MM,
            "nadir_mm": None if tp.nadir is None else tp.nadir / UNITS_PER_MM,
            "change_from_baseline_pct": tp.change_from_baseline_pct,
            "change_from_nadir_pct": tp.change_from_nadir_pct,
            "target_response": codes[tp.target_response],
            "non_target_response": codes[tp.non_target_response],
            "new_lesions": codes[tp.new_lesions],
            "overall_response": codes[tp.overall_response],
            "reasons": list(tp.reasons),
            "flags": {k: list(v) for k, v in tp.flags.items()} if tp.flags else {},
        }
    out: dict[str, Any] = {
        "id": tp.id,
        "date": tp.date.isoformat(),
        "sum_mm": None if tp.sum is None else tp.sum / UNITS_PER_MM,
    }
    if tp.partial_sum is not None:
        out["partial_sum_mm"] = tp.partial_sum / UNITS_PER_MM
    if tp.overall_response is not None:
        out["nadir_mm"] = None if tp.nadir is None else tp.nadir / UNITS_PER_MM
        out["change_from_baseline_pct"] = tp.change_from_baseline_pct
        out["change_from_nadir_pct"] = tp.change_from_nadir_pct
    out["target_response"] = codes[tp.target_response]
    out["non_target_response"] = codes[tp.non_target_response]
    out["new_lesions"] = codes[tp.new_lesions]
    out["overall_response"] = codes[tp.overall_response]
    out["reasons"] = list(tp.reasons)
    out["flags"] = {k: list(v) for k, v in tp.flags.items()} if tp.flags else {}
    return out


def _i_best(best: IBestResponse) -> dict[str, Any]:
    return {
        "response": best.response.value,
        "timepoint": best.timepoint,
        "reasons": list(best.reasons),
    }


def _code(value: Any) -> str | None:
    return None if value is None else str(value.value)


def irecist_timepoint_to_json(tp: IrecistTimepointResult) -> dict[str, Any]:
    """One iRECIST timepoint in the contract's shape: the RECIST 1.1 fields with iRECIST's
    codes, and the new lesions' response and sum (I-NEW-3, I-NEW-4)."""
    out: dict[str, Any] = {
        "id": tp.id,
        "date": tp.date.isoformat(),
        "sum_mm": _mm(tp.sum),
    }
    if tp.partial_sum is not None:
        out["partial_sum_mm"] = _mm(tp.partial_sum)
    if tp.overall_response is not None:
        out["nadir_mm"] = _mm(tp.nadir)
        out["change_from_baseline_pct"] = tp.change_from_baseline_pct
        out["change_from_nadir_pct"] = tp.change_from_nadir_pct
    out["target_response"] = _code(tp.target_response)
    out["non_target_response"] = _code(tp.non_target_response)
    out["new_lesions"] = _code(tp.new_lesions)
    out["new_lesion_response"] = _code(tp.new_lesion_response)
    out["new_target_sum_mm"] = _mm(tp.new_target_sum)
    if tp.new_target_partial_sum is not None:
        out["new_target_partial_sum_mm"] = _mm(tp.new_target_partial_sum)
    out["new_target_nadir_mm"] = _mm(tp.new_target_nadir)
    out["overall_response"] = _code(tp.overall_response)
    out["reasons"] = list(tp.reasons)
    out["flags"] = {k: list(v) for k, v in tp.flags.items()}
    return out


def irecist_result_to_json(result: IrecistResult) -> dict[str, Any]:
    """An iRECIST result in the contract's shape, the RECIST 1.1 result as ``recist1_1``."""
    progression = result.progression
    best = result.best_overall_response
    return {
        "subject_id": result.subject_id,
        "criteria": Criteria.IRECIST.value,
        "warnings": [f.to_dict() for f in result.warnings],
        "queries": [q.to_dict() for q in result.queries],
        "timepoints": [irecist_timepoint_to_json(tp) for tp in result.timepoints],
        "best_overall_response": best.response.value,
        "best_overall_response_detail": _i_best(best),
        "best_overall_response_confirmed": result.best_overall_response_confirmed.response.value,
        "best_overall_response_unconfirmed": (
            result.best_overall_response_unconfirmed.response.value
        ),
        "progression": None
        if progression is None
        else {
            "timepoint": progression.timepoint,
            "date": progression.date.isoformat(),
            "reason": progression.reason.value,
            "back_dated": progression.back_dated,
            "iupd_timepoint": result.iupd_timepoint,
        },
        "pfs": result.pfs.to_dict(),
        "new_lesion_categories": [n.to_dict() for n in result.new_lesions],
        "settings": _settings_dict(result.settings),
        "recist1_1": result_to_json(result.recist1_1),
    }


def result_to_json(result: CaseResult) -> dict[str, Any]:
    """A case result in the contract's shape, plus both best-response variants."""
    progression = result.progression
    best = result.best_overall_response
    codes = _CODES
    return {
        "subject_id": result.subject_id,
        "warnings": [f.to_dict() for f in result.warnings] if result.warnings else [],
        "queries": [q.to_dict() for q in result.queries] if result.queries else [],
        "timepoints": [timepoint_to_json(tp) for tp in result.timepoints],
        "best_overall_response": codes[best.response],
        "best_overall_response_detail": _best(best),
        "best_overall_response_confirmed": codes[result.best_overall_response_confirmed.response],
        "best_overall_response_unconfirmed": (
            codes[result.best_overall_response_unconfirmed.response]
        ),
        "progression": None
        if progression is None
        else {
            "timepoint": progression.timepoint,
            "date": progression.date.isoformat(),
            "reason": codes[progression.reason],
            "back_dated": progression.back_dated,
        },
        "pfs": result.pfs.to_dict(),
        "settings": _settings_dict(result.settings),
    }


def assess_case(case: Case) -> dict[str, Any]:
    """Assess a case and serialise its result (``recist.jsonio.assess_json``)."""
    try:
        result = assess(case)
    except RecistError as error:
        raise error.located(subject=case.subject_id) from None
    out = (
        irecist_result_to_json(result)
        if isinstance(result, IrecistResult)
        else result_to_json(result)
    )
    if case.arm is not None:
        out["arm"] = case.arm
    if case.reader is not None:
        out["reader"] = case.reader
    if case.accepted is not None:
        out["accepted"] = case.accepted
    return out

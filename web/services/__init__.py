"""The service layer: every write of the web application goes through a function here.

Each public write is one transaction (:func:`web.db.write_transaction`): it locks the
subject row, validates its input with the engine's contract (:func:`validated`, the
models of ``recist.jsonio``), changes rows, writes one append-only audit record per
changed field (who, when in UTC, entity, field, old, new, reason) with the values as
stored, recomputes the subject's result with the engine, and commits — or changes
nothing. Pages (``web.pages``) and the API (``web.api``) only translate requests and
render results.

The package is split by area: ``trials``, ``subjects``, ``baseline``, ``timepoints``,
``signing``, ``progression`` (review of progression calls), ``central`` (independent
central review), ``plots``, ``uploads``, ``users`` and ``audit``; ``cases`` holds the
contract (validation, a subject as the engine's case, recomputation) and ``common`` what
they all share. The names below are the layer's public interface.
"""

from __future__ import annotations

from web.db import db_session as request_session
from web.errors import (
    ConcurrentEdit,
    Conflict,
    InvalidInput,
    Locked,
    NotFound,
    ReasonRequired,
    ServiceError,
)
from web.services import audit  # registers the audit chain on every session
from web.services.baseline import (
    BASELINE_KEYS,
    baseline_case,
    baseline_findings,
    baseline_lesions,
    save_baseline,
)
from web.services.cases import (
    assess_case,
    build_case,
    case_pointer,
    engine_assess,
    ordered_timepoints,
    timepoint_as_dict,
    validated,
)
from web.services.common import (
    CLINICAL_ENTITIES,
    MAX_REASON,
    SYSTEM,
    Actor,
    Audit,
    audit_trail,
    check_no_later_lock,
    check_unlocked,
    check_version,
    clean_reason,
    flush,
    get_subject,
    get_timepoint,
    get_trial,
    list_subjects,
    list_trials,
    subject_counts,
)
from web.services.subjects import (
    SUBJECT_FIELDS,
    controlled_site,
    create_subject,
    import_case,
    update_subject,
)
from web.services.timepoints import delete_timepoint, save_timepoint
from web.services.trials import check_settings, create_trial
from web.services.users import (
    LOGIN_LOCK,
    MAX_FAILED_LOGINS,
    authenticate,
    create_token,
    create_user,
    set_password,
    user_for_token,
)

__all__ = [
    "BASELINE_KEYS",
    "CLINICAL_ENTITIES",
    "LOGIN_LOCK",
    "MAX_FAILED_LOGINS",
    "MAX_REASON",
    "SUBJECT_FIELDS",
    "SYSTEM",
    "Actor",
    "Audit",
    "ConcurrentEdit",
    "Conflict",
    "InvalidInput",
    "Locked",
    "NotFound",
    "ReasonRequired",
    "ServiceError",
    "assess_case",
    "audit",
    "audit_trail",
    "authenticate",
    "baseline_case",
    "baseline_findings",
    "baseline_lesions",
    "build_case",
    "case_pointer",
    "check_no_later_lock",
    "check_settings",
    "check_unlocked",
    "check_version",
    "clean_reason",
    "controlled_site",
    "create_subject",
    "create_token",
    "create_trial",
    "create_user",
    "delete_timepoint",
    "engine_assess",
    "flush",
    "get_subject",
    "get_timepoint",
    "get_trial",
    "import_case",
    "list_subjects",
    "list_trials",
    "ordered_timepoints",
    "request_session",
    "save_baseline",
    "save_timepoint",
    "set_password",
    "subject_counts",
    "timepoint_as_dict",
    "update_subject",
    "user_for_token",
    "validated",
]

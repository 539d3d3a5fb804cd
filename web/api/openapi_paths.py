"""The paths of the OpenAPI document (:mod:`web.api.openapi`), one entry per route of
``/api/v1`` with the permission it needs (``x-permission``); a test checks both against the
routes the server serves.
"""

from __future__ import annotations

from typing import Any

S = "/trials/{trial_code}/subjects/{subject_code}"
C = "/trials/{trial_code}/progression-calls/{subject_code}"
TP = S + "/timepoints/{tp_code}"


def op(
    summary: str,
    permission: str | None,
    *,
    body: dict[str, Any] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    """An operation: its summary, the permission it needs (``None``: public), the JSON
    body it takes and the error responses."""
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK", "content": {"application/json": {}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    }
    if permission is None:
        operation["security"] = []
    else:
        operation["x-permission"] = permission
    if body is not None:
        content = {"application/json": {"schema": body}}
        operation["requestBody"] = {"required": True, "content": content}
        operation["responses"]["409"] = {"$ref": "#/components/responses/Error"}
        operation["responses"]["422"] = {"$ref": "#/components/responses/Error"}
    return operation


def _analysis_export() -> dict[str, Any]:
    """The trial's CDISC export for analysis: CSV, or 409 while the trial is not ready."""
    operation = op(
        "One CDISC domain for analysis (rs, tu, tr, adrs, adtte) as CSV: one read per subject, "
        "responses, BOR and PFS after adjudication and overrides (R-BOR-USED), with their "
        "provenance; 409 naming the subjects while central reads await adjudication or a "
        "progression call is under an open query",
        "view_audit",
    )
    operation["responses"]["200"]["content"] = {"text/csv": {}}
    operation["responses"]["409"] = {"$ref": "#/components/responses/Error"}
    return operation


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name`` of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def paths() -> dict[str, Any]:
    """Every path of the API: the trial's resources, then the review routes."""
    return {**resource_paths(), **review_paths()}


def resource_paths() -> dict[str, Any]:
    """Assessment, trials, subjects, baseline and timepoints."""
    return {
        "/openapi.json": {"get": op("This document", None)},
        "/assess": {"post": op("Assess one case (stateless)", "assess", body=ref("Case"))},
        "/trials": {
            "get": op("List trials", "view"),
            "post": op(
                "Create a trial with protocol settings and arms",
                "manage_trials",
                body={
                    "type": "object",
                    "required": ["code"],
                    "properties": {
                        "code": {"type": "string"},
                        "title": {"type": "string"},
                        "settings": {"type": "object"},
                        "arms": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["code"],
                                "properties": {
                                    "code": {"type": "string"},
                                    "name": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                status="201",
            ),
        },
        "/trials/{trial_code}": {"get": op("One trial", "view")},
        "/trials/{trial_code}/settings": {
            "patch": op(
                "Change protocol settings with a reason; every subject re-assessed; 409 if a "
                "signed read's result would change",
                "manage_trials",
                body={
                    "type": "object",
                    "required": ["settings", "reason"],
                    "properties": {
                        "settings": {"type": "object"},
                        "reason": {"type": "string"},
                    },
                },
            )
        },
        "/trials/{trial_code}/batches": {
            "post": op(
                "Start a batch (recist batch) from a folder under the server's batch root or "
                "a manifest (CSV or JSON Lines text); each measured study waits for a reader",
                "manage_trials",
                body={
                    "type": "object",
                    "properties": {
                        "folder": {"type": "string"},
                        "manifest": {"type": "string"},
                        "manifest_name": {"type": "string"},
                    },
                },
                status="202",
            )
        },
        "/trials/{trial_code}/batches/{job_id}": {
            "get": op("A batch: status, counts, rate, ETA, each study's outcome", "manage_trials")
        },
        "/trials/{trial_code}/batches/{job_id}/resume": {
            "post": op(
                "Resume an interrupted or failed batch: what already landed is skipped "
                "(409 while it runs elsewhere or when it is done)",
                "manage_trials",
                status="202",
            )
        },
        "/trials/{trial_code}/members": {
            "get": op("The users assigned to a trial", "manage_members"),
            "post": op(
                "Assign a user to a trial (only members reach a trial; admins reach all)",
                "manage_members",
                body={
                    "type": "object",
                    "required": ["username"],
                    "properties": {"username": {"type": "string"}},
                },
                status="201",
            ),
        },
        "/trials/{trial_code}/members/{username}": {
            "delete": op(
                "End a user's membership of a trial (audited, with an optional reason)",
                "manage_members",
                body={"type": "object", "properties": {"reason": {"type": "string"}}},
            )
        },
        "/trials/{trial_code}/subjects": {
            "get": op("Subjects with BOR, progression and PFS", "view"),
            "post": op(
                "Register a subject",
                "manage_subjects",
                body={
                    "type": "object",
                    "required": ["subject_id"],
                    "properties": {
                        "subject_id": {"type": "string"},
                        "arm": {"type": "string"},
                        "randomized_on": {"type": "string", "format": "date"},
                        "died_on": {"type": "string", "format": "date"},
                        "new_therapy_on": {"type": "string", "format": "date"},
                    },
                },
                status="201",
            ),
        },
        S + "/imaging-binding": {
            "get": op("The patient key the subject's images are bound to", "view"),
            "put": op(
                "Rebind the subject's images to another patient key, with a reason",
                "manage_subjects",
                body={
                    "type": "object",
                    "required": ["subject_key", "reason"],
                    "properties": {
                        "subject_key": {"type": ["string", "null"]},
                        "reason": {"type": "string"},
                    },
                },
            ),
        },
        "/trials/{trial_code}/cases": {
            "post": op(
                "Import a whole case as a new subject",
                "import_cases",
                body=ref("Case"),
                status="201",
            )
        },
        S: {
            "get": op("A subject: its case (with timepoint versions) and result", "view"),
            "patch": op(
                "Change arm or dates (version optional, reason kept in the audit trail)",
                "manage_subjects",
                body={
                    "type": "object",
                    "properties": {
                        "arm": {"type": ["string", "null"]},
                        "randomized_on": {"type": ["string", "null"]},
                        "died_on": {"type": ["string", "null"]},
                        "new_therapy_on": {"type": ["string", "null"]},
                        "version": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                },
            ),
        },
        S + "/result": {"get": op("Responses per timepoint, BOR and PFS", "view")},
        S + "/lesions": {"get": op("Baseline lesions", "view")},
        S + "/baseline": {
            "put": op(
                "Select baseline lesions; findings (R-MEAS, R-SEL) need a reason (422); with "
                "`sign` the baseline read is signed as it is saved, all or nothing",
                "enter_measurements",
                body={
                    "type": "object",
                    "required": ["date", "lesions"],
                    "properties": {
                        "id": {"type": "string", "default": "BL"},
                        "date": {"type": "string", "format": "date"},
                        "lesions": {"type": "array", "items": ref("BaselineLesion")},
                        "version": {"type": "integer"},
                        "reason": {"type": "string"},
                        "sign": ref("SignOnSave"),
                    },
                },
            )
        },
        S + "/timepoints": {
            "get": op("Timepoints with versions", "view"),
            "post": op(
                "Add a follow-up; returns the new assessment (with `sign`: signed as saved)",
                "enter_measurements",
                body=ref("Timepoint"),
                status="201",
            ),
        },
        S + "/timepoints/{tp_code}": {
            "get": op("One timepoint with its version", "view"),
            "put": op(
                "Replace a follow-up (stale version: 409); returns the new assessment. An "
                "`id` in the body other than the URL's renames the visit (audited, with the "
                "reason). With `sign` the read is signed as it is saved, all or nothing",
                "enter_measurements",
                body=ref("Timepoint"),
            ),
            "delete": op(
                "Delete a follow-up (version and reason required)",
                "enter_measurements",
                body={
                    "type": "object",
                    "required": ["version", "reason"],
                    "properties": {"version": {"type": "integer"}, "reason": {"type": "string"}},
                },
            ),
        },
        S + "/timepoints/{tp_code}/measurements": {
            "get": op("Per-lesion records at a timepoint", "view")
        },
    }


def object_schema(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }


_CALL = {
    "type": "string",
    "description": "the call you reviewed, TIMEPOINT/DATE as in the queue's 'call'; a call "
    "that changed since is refused (409 concurrent_edit)",
    "examples": ["W16/2021-04-26"],
}
_PASSWORD = {
    "type": "string",
    "description": "your password, entered again: the signature (checked even with a token)",
}
_AUDIT_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
    for name, schema, text in (
        ("user", {"type": "string"}, "user name"),
        ("entity", {"type": "string"}, "e.g. timepoint, measurement, progression"),
        ("action", {"type": "string"}, "create, update, save, delete, lock, sign, unlock, …"),
        ("from", {"type": "string", "format": "date"}, "first UTC day, included"),
        ("to", {"type": "string", "format": "date"}, "last UTC day, included"),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "default 500"),
    )
]


def review_paths() -> dict[str, Any]:
    """Signing, progression-call review, central review and audit."""
    trial_audit = op(
        "The trial's audit records, newest first ('truncated' when over the limit)",
        "view_audit",
    )
    trial_audit["parameters"] = _AUDIT_QUERY
    subject_audit = op("The subject's audit records, newest first", "view_audit")
    subject_audit["parameters"] = _AUDIT_QUERY
    return {
        "/trials/{trial_code}/progression-calls": {
            "get": op(
                "Progression-call queue: rule fired, numbers, reader, sign-off, review "
                "state, and the call used beside the engine's call",
                "view",
            )
        },
        C: {"get": op("One subject's progression call with its review history", "view")},
        C + "/review": {
            "post": op(
                "Agree with or query the current call (a query needs a comment)",
                "review_calls",
                body=object_schema(
                    ["decision", "call"],
                    decision={"enum": ["agreed", "queried"]},
                    comment={"type": "string"},
                    call=_CALL,
                ),
            )
        },
        C + "/answer": {
            "post": op(
                "Answer the open query on the call (the reader)",
                "answer_queries",
                body=object_schema(["comment", "call"], comment={"type": "string"}, call=_CALL),
            )
        },
        C + "/override": {
            "post": op(
                "Replace the call used for analysis (adjudicator, with a reason); the "
                "engine's call is kept beside it",
                "override_calls",
                body=object_schema(
                    ["timepoint", "reason", "call"],
                    timepoint={
                        "type": ["string", "null"],
                        "description": "a follow-up id, or null for no progression",
                    },
                    reason={"type": "string"},
                    call=_CALL,
                ),
            )
        },
        TP + "/signature": {
            "get": op("Whether the read is signed and locked, by whom, when, meaning", "view")
        },
        TP + "/sign": {
            "post": op(
                "Sign the read (password re-entered, meaning) and lock it; a locked read "
                "refuses changes (409 locked)",
                "sign_reads",
                body=object_schema(
                    ["password", "meaning", "version"],
                    password=_PASSWORD,
                    meaning={"enum": ["read complete", "read complete (acting as adjudicator)"]},
                    version={
                        "type": "integer",
                        "description": "the version you checked (from GET)",
                    },
                ),
            )
        },
        S + "/sign-all": {
            "post": op(
                "Sign the listed unsigned reads you entered with one password (each 'read "
                "complete', locked, audited); one stale, signed or someone else's read refuses "
                "all of them",
                "sign_reads",
                body=object_schema(
                    ["password", "reads"],
                    password=_PASSWORD,
                    reads={
                        "type": "array",
                        "minItems": 1,
                        "items": object_schema(
                            ["timepoint", "version"],
                            timepoint={"type": "string"},
                            version={
                                "type": "integer",
                                "description": "the version you checked (from GET)",
                            },
                        ),
                    },
                    meaning={"enum": ["read complete"]},
                ),
            )
        },
        "/inbox": {
            "get": op(
                "Your inbox: unsigned reads, queries, PACS studies, calls awaiting review, "
                "adjudications, a trial manager's blockers; with the header's counts",
                "view",
            )
        },
        TP + "/unlock": {
            "post": op(
                "Unlock a signed read (adjudicator or trial manager, with a reason); the "
                "signature is withdrawn",
                "unlock_reads",
                body=object_schema(["reason"], reason={"type": "string"}),
            )
        },
        "/trials/{trial_code}/audit": {"get": trial_audit},
        S + "/audit": {"get": subject_audit},
        "/audit/verify": {
            "get": op(
                "Walk the audit hash chain and name the first broken link (200 either way)",
                "view_audit",
            )
        },
        "/trials/{trial_code}/central-review": {
            "get": op(
                "Central review: each subject's reads, disagreement, adjudication; "
                "adjudication rate and readers' adjudications won and lost",
                "view_audit",
            )
        },
        S + "/central-review": {
            "get": op("Both central reads of a subject in full, side by side", "view_audit")
        },
        "/trials/{trial_code}/exports/{domain}.csv": {"get": _analysis_export()},
        S + "/adjudication": {
            "post": op(
                "Accept one of two disagreeing reads with a rationale, signed with the password",
                "adjudicate",
                body=object_schema(
                    ["accepted", "rationale", "password"],
                    accepted={"enum": [1, 2]},
                    rationale={"type": "string"},
                    password=_PASSWORD,
                ),
            )
        },
    }

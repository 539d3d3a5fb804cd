"""The OpenAPI 3.1 document of ``/api/v1`` (served at ``/api/v1/openapi.json``).

The case schema comes from the engine (``recist.jsonio.case_json_schema``), so the API
documents exactly the contract the engine validates. A test checks that every API route
and method appears here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

S = "/trials/{trial_code}/subjects/{subject_code}"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid_input", "concurrent_edit"]},
                "message": {"type": "string", "description": "one sentence naming the field"},
                "field": {"type": ["string", "null"]},
                "pointer": {
                    "type": ["string", "null"],
                    "description": "JSON pointer (RFC 6901) into the request body",
                },
                "rule": {"type": "string", "description": "RECIST rule id, e.g. R-SEL-1"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}

_TIMEPOINT = {
    "type": "object",
    "description": "A timepoint of the case contract (docs/interfaces.md) with its version.",
    "required": ["id", "date"],
    "properties": {
        "id": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "targets": {
            "type": "object",
            "description": "target lesion id → its value (docs/interfaces.md)",
            "additionalProperties": {
                "oneOf": [
                    {"type": "number", "minimum": 0, "description": "mm (nodes: short axis)"},
                    {"enum": ["too_small", "absent", "not_evaluated"]},
                    {
                        "type": "object",
                        "required": ["fragments"],
                        "additionalProperties": False,
                        "properties": {"fragments": {"type": "array", "items": {"type": "number"}}},
                    },
                    {
                        "type": "object",
                        "required": ["merged_into"],
                        "additionalProperties": False,
                        "properties": {"merged_into": {"type": "string"}},
                    },
                ]
            },
        },
        "non_targets": {
            "type": "object",
            "description": "non-target lesion id → its state",
            "additionalProperties": {"enum": ["present", "absent", "progression", "not_evaluated"]},
        },
        "new_lesions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "site"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "site": {"type": "string", "description": "from the controlled site list"},
                    "equivocal": {"type": "boolean"},
                    "nodal": {"type": "boolean"},
                    "short_axis_mm": {
                        "type": "number",
                        "description": "required for an unequivocal new node (R-NEW-1)",
                    },
                },
            },
        },
        "scan_dates": {
            "type": "object",
            "description": "lesion id → date of the scan that showed it",
            "additionalProperties": {"type": "string", "format": "date"},
        },
        "version": {"type": "integer", "description": "required to change a timepoint"},
        "reason": {"type": "string"},
    },
}

_LESION = {
    "type": "object",
    "required": ["id", "kind", "site"],
    "properties": {
        "id": {"type": "string", "examples": ["T01", "NT01"]},
        "kind": {"enum": ["target", "non-target"]},
        "site": {"type": "string", "description": "from the controlled site list"},
        "nodal": {"type": "boolean"},
        "size": {
            "description": "baseline size in mm (LD; SA for nodes) or 'too_small'",
            "anyOf": [{"type": "number", "minimum": 0}, {"const": "too_small"}],
        },
        "state": {"enum": ["present", "absent", "progression", "not_evaluated"]},
        "treated_on": {"type": "string", "format": "date"},
        "treatment": {"type": "string"},
        "modality": {"type": "string"},
        "slice_thickness_mm": {"type": "number"},
    },
}


def _op(
    summary: str,
    permission: str | None,
    *,
    body: dict[str, Any] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
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
        op["security"] = []
    else:
        op["x-permission"] = permission
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        op["responses"]["409"] = {"$ref": "#/components/responses/Error"}
        op["responses"]["422"] = {"$ref": "#/components/responses/Error"}
    return op


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    from recist.jsonio import case_json_schema

    case_schema = case_json_schema()
    # Pydantic puts nested models under $defs; OpenAPI wants them under components.
    defs = case_schema.pop("$defs", {})
    schemas: dict[str, Any] = {name: _rewrite_refs(value) for name, value in defs.items()}
    schemas["Case"] = _rewrite_refs(case_schema)
    schemas["Error"] = _ERROR
    schemas["Timepoint"] = _TIMEPOINT
    schemas["BaselineLesion"] = _LESION
    paths: dict[str, Any] = {
        "/openapi.json": {"get": _op("This document", None)},
        "/assess": {"post": _op("Assess one case (stateless)", "assess", body=_ref("Case"))},
        "/trials": {
            "get": _op("List trials", "view"),
            "post": _op(
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
        "/trials/{trial_code}": {"get": _op("One trial", "view")},
        "/trials/{trial_code}/subjects": {
            "get": _op("Subjects with BOR, progression and PFS", "view"),
            "post": _op(
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
        "/trials/{trial_code}/cases": {
            "post": _op(
                "Import a whole case as a new subject",
                "import_cases",
                body=_ref("Case"),
                status="201",
            )
        },
        S: {
            "get": _op("A subject: its case (with timepoint versions) and result", "view"),
            "patch": _op(
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
        S + "/result": {"get": _op("Responses per timepoint, BOR and PFS", "view")},
        S + "/lesions": {"get": _op("Baseline lesions", "view")},
        S + "/baseline": {
            "put": _op(
                "Select baseline lesions; findings (R-MEAS, R-SEL) need a reason (422)",
                "enter_measurements",
                body={
                    "type": "object",
                    "required": ["date", "lesions"],
                    "properties": {
                        "id": {"type": "string", "default": "BL"},
                        "date": {"type": "string", "format": "date"},
                        "lesions": {"type": "array", "items": _ref("BaselineLesion")},
                        "version": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                },
            )
        },
        S + "/timepoints": {
            "get": _op("Timepoints with versions", "view"),
            "post": _op(
                "Add a follow-up; returns the new assessment",
                "enter_measurements",
                body=_ref("Timepoint"),
                status="201",
            ),
        },
        S + "/timepoints/{tp_code}": {
            "get": _op("One timepoint with its version", "view"),
            "put": _op(
                "Replace a follow-up (stale version: 409); returns the new assessment. An "
                "`id` in the body other than the URL's renames the visit (audited, with the "
                "reason)",
                "enter_measurements",
                body=_ref("Timepoint"),
            ),
            "delete": _op(
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
            "get": _op("Per-lesion records at a timepoint", "view")
        },
        **_review_paths(),
    }
    _declare_path_parameters(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RECIST 1.1 assessment service",
            "version": "1",
            "description": "Lesion measurements in, RECIST 1.1 responses, best overall "
            "response and PFS out. Rule ids refer to docs/recist-rules.md.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "An error naming the field",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
        },
    }


C = "/trials/{trial_code}/progression-calls/{subject_code}"
TP = S + "/timepoints/{tp_code}"


_PARAMETER_TEXT = {
    "trial_code": "the trial's code, e.g. STEREO-SEIN-DEMO",
    "subject_code": "the subject's id within the trial",
    "tp_code": "the timepoint's visit id, e.g. W8",
}


def _declare_path_parameters(paths: dict[str, Any]) -> None:
    """Declare every ``{name}`` of a path as a required path parameter (OpenAPI 3.1 §4.8.12:
    each template expression must have a matching parameter)."""
    import re

    for path, operations in paths.items():
        names = re.findall(r"\{(\w+)\}", path)
        if not names:
            continue
        declared = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": _PARAMETER_TEXT.get(name, name),
                "schema": {"type": "string"},
            }
            for name in names
        ]
        for operation in operations.values():
            operation["parameters"] = declared + [
                p for p in operation.get("parameters", []) if p.get("in") != "path"
            ]


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
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
        ("action", {"type": "string"}, "create, update, delete, lock, sign, unlock, …"),
        ("from", {"type": "string", "format": "date"}, "first UTC day, included"),
        ("to", {"type": "string", "format": "date"}, "last UTC day, included"),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "default 500"),
    )
]


def _review_paths() -> dict[str, Any]:
    """Signing, progression-call review, central review and audit (``web/api/review.py``)."""
    trial_audit = _op(
        "The trial's audit records, newest first ('truncated' when over the limit)",
        "view_audit",
    )
    trial_audit["parameters"] = _AUDIT_QUERY
    subject_audit = _op("The subject's audit records, newest first", "view_audit")
    subject_audit["parameters"] = _AUDIT_QUERY
    return {
        "/trials/{trial_code}/progression-calls": {
            "get": _op(
                "Progression-call queue: rule fired, numbers, reader, sign-off, review "
                "state, and the call used beside the engine's call",
                "view",
            )
        },
        C: {"get": _op("One subject's progression call with its review history", "view")},
        C + "/review": {
            "post": _op(
                "Agree with or query the current call (a query needs a comment)",
                "review_calls",
                body=_object(
                    ["decision", "call"],
                    decision={"enum": ["agreed", "queried"]},
                    comment={"type": "string"},
                    call=_CALL,
                ),
            )
        },
        C + "/answer": {
            "post": _op(
                "Answer the open query on the call (the reader)",
                "answer_queries",
                body=_object(["comment", "call"], comment={"type": "string"}, call=_CALL),
            )
        },
        C + "/override": {
            "post": _op(
                "Replace the call used for analysis (adjudicator, with a reason); the "
                "engine's call is kept beside it",
                "override_calls",
                body=_object(
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
            "get": _op("Whether the read is signed and locked, by whom, when, meaning", "view")
        },
        TP + "/sign": {
            "post": _op(
                "Sign the read (password re-entered, meaning) and lock it; a locked read "
                "refuses changes (409 locked)",
                "sign_reads",
                body=_object(
                    ["password", "meaning", "version"],
                    password=_PASSWORD,
                    meaning={"enum": ["read complete"]},
                    version={
                        "type": "integer",
                        "description": "the version you checked (from GET)",
                    },
                ),
            )
        },
        TP + "/unlock": {
            "post": _op(
                "Unlock a signed read (adjudicator or trial manager, with a reason); the "
                "signature is withdrawn",
                "unlock_reads",
                body=_object(["reason"], reason={"type": "string"}),
            )
        },
        "/trials/{trial_code}/audit": {"get": trial_audit},
        S + "/audit": {"get": subject_audit},
        "/audit/verify": {
            "get": _op(
                "Walk the audit hash chain and name the first broken link (200 either way)",
                "view_audit",
            )
        },
        "/trials/{trial_code}/central-review": {
            "get": _op(
                "Central review: each subject's reads, disagreement, adjudication; "
                "adjudication rate and readers' adjudications won and lost",
                "view_audit",
            )
        },
        S + "/central-review": {
            "get": _op("Both central reads of a subject in full, side by side", "view_audit")
        },
        S + "/adjudication": {
            "post": _op(
                "Accept one of two disagreeing reads with a rationale, signed with the password",
                "adjudicate",
                body=_object(
                    ["accepted", "rationale", "password"],
                    accepted={"enum": [1, 2]},
                    rationale={"type": "string"},
                    password=_PASSWORD,
                ),
            )
        },
    }


def _rewrite_refs(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/$defs/"):
                out[key] = "#/components/schemas/" + item.removeprefix("#/$defs/")
            else:
                out[key] = _rewrite_refs(item)
        return out
    if isinstance(value, list):
        return [_rewrite_refs(v) for v in value]
    return value

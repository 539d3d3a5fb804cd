"""The OpenAPI 3.1 document of ``/api/v1`` (served at ``/api/v1/openapi.json``).

The case schema comes from the engine (``recist.jsonio.case_json_schema``), so the API
documents exactly the contract the engine validates. A test checks that every API route
and method appears here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from web.api.openapi_paths import paths as all_paths
from web.api.openapi_paths import ref

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

# Annotations the rules never read, kept by the web only (docs/contracts.md §4).
_ANNOTATIONS: dict[str, Any] = {
    "location": {
        "type": "string",
        "maxLength": 120,
        "description": "web-side, not in the case: free text, e.g. 'segment VII'",
    },
    "series": {"type": "integer", "minimum": 1, "maximum": 999999, "description": "web-side"},
    "image": {"type": "integer", "minimum": 1, "maximum": 999999, "description": "web-side"},
}

_TIMEPOINT = {
    "type": "object",
    "description": "A timepoint of the case contract (docs/contracts.md) with its version.",
    "required": ["id", "date"],
    "properties": {
        "id": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "targets": {
            "type": "object",
            "description": "target lesion id → its value (docs/contracts.md)",
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
                "required": ["id"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "site": {
                        "type": "string",
                        "description": "from the controlled site list; required at the first "
                        "listing (iRECIST: a later listing left without it keeps the first's)",
                    },
                    "equivocal": {"type": "boolean"},
                    "nodal": {"type": "boolean"},
                    "short_axis_mm": {
                        "type": "number",
                        "description": "required for an unequivocal new node (R-NEW-1)",
                    },
                    "size_mm": {
                        "description": "iRECIST (I-NEW-4): LD (a node's short axis) in mm, "
                        "or 'too_small', 'absent', 'not_evaluated'",
                        "anyOf": [
                            {"type": "number", "minimum": 0},
                            {"enum": ["too_small", "absent", "not_evaluated"]},
                        ],
                    },
                    "category": {
                        "enum": ["target", "non-target"],
                        "description": "iRECIST (I-NEW-1): the reader's category",
                    },
                    "state": {
                        "enum": ["present", "absent", "progression", "not_evaluated"],
                        "description": "iRECIST (I-NEW-4): a new non-target's state",
                    },
                    **_ANNOTATIONS,
                },
            },
        },
        "scan_dates": {
            "type": "object",
            "description": "lesion id → date of the scan that showed it",
            "additionalProperties": {"type": "string", "format": "date"},
        },
        "images": {
            "type": "object",
            "description": "web-side, not in the case: baseline lesion id → its key image",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: _ANNOTATIONS[k] for k in ("series", "image")},
            },
        },
        "version": {"type": "integer", "description": "required to change a timepoint"},
        "reason": {"type": "string"},
        "sign": ref("SignOnSave"),
    },
}

# Sign on save (API): the save's body may carry the signature, so that a read is never
# saved unsigned between two requests; all or nothing.
_SIGN_ON_SAVE = {
    "type": ["object", "null"],
    "description": "Sign on save: the read this request saves is signed 'read complete' and "
    "locked in the same transaction, as POST …/sign would sign it (password counted like a "
    "login, sign and lock audit records, digest of the values). All or nothing: a missing or "
    "wrong password (400 `invalid_input` / `signature_refused`, field `sign.password`; a "
    "locked account answers as a wrong password), a read someone else entered (403 "
    "`not_your_read`, field `sign`), a signed read (409 `locked`) or a stale version (409 "
    "`concurrent_edit`) saves nothing and signs nothing. Null or absent: save only.",
    "required": ["password"],
    "additionalProperties": False,
    "properties": {
        "password": {
            "type": "string",
            "minLength": 1,
            "maxLength": 1024,
            "description": "your password, entered again: the signature (checked even with "
            "a token)",
        },
        "meaning": {"const": "read complete", "default": "read complete"},
    },
}

_SIGNATURE = {
    "type": "object",
    "description": "The read's signature as committed (GET …/signature)",
    "properties": {
        "subject_id": {"type": "string"},
        "timepoint": {"type": "string"},
        "version": {"type": "integer"},
        "locked": {"type": "boolean"},
        "entered_by": {"type": ["string", "null"]},
        "signed_by": {"type": ["string", "null"], "description": "user name"},
        "signer": {"type": ["string", "null"], "description": "printed name, 'Name (user)'"},
        "signed_at": {"type": ["string", "null"], "description": "UTC, ISO 8601"},
        "meaning": {"type": ["string", "null"]},
        "url": {"type": "string"},
    },
}

# The saves that sign on save: (path, method) → what the response holds beside `signature`.
_SIGNING_SAVES = {
    ("/trials/{trial_code}/subjects/{subject_code}/timepoints", "post"): "timepoint",
    ("/trials/{trial_code}/subjects/{subject_code}/timepoints/{tp_code}", "put"): "timepoint",
    ("/trials/{trial_code}/subjects/{subject_code}/baseline", "put"): "subject",
}


def _document_sign_on_save(paths: dict[str, Any]) -> None:
    """The responses of the saves that take ``sign``: ``signature`` when signed."""
    for (path, method), what in _SIGNING_SAVES.items():
        operation = paths[path][method]
        status = "201" if method == "post" else "200"
        beside = (
            {"timepoint": {"type": "object"}, "result": {"type": "object"}}
            if what == "timepoint"
            else {"subject_id": {"type": "string"}, "result": {"type": "object"}}
        )
        operation["responses"][status] = {
            "description": "Saved (and, with `sign`, signed: `signature`)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {**beside, "signature": ref("Signature")},
                    }
                }
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
        **_ANNOTATIONS,
    },
}


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
    schemas["SignOnSave"] = _SIGN_ON_SAVE
    schemas["Signature"] = _SIGNATURE
    paths = all_paths()
    _declare_path_parameters(paths)
    _document_sign_on_save(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RECIST 1.1 assessment service",
            "version": "1",
            "description": "Lesion measurements in, RECIST 1.1 responses, best overall "
            "response and PFS out. Rule ids refer to docs/rules.md.",
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
                    "content": {"application/json": {"schema": ref("Error")}},
                }
            },
        },
    }


_PARAMETER_TEXT = {
    "trial_code": "the trial's code, e.g. STEREO-SEIN-DEMO",
    "subject_code": "the subject's id within the trial",
    "tp_code": "the timepoint's visit id, e.g. W8",
    "job_id": "the batch's number",
    "domain": "the CDISC domain: rs, tu, tr, adrs or adtte",
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

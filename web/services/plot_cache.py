"""Drawn plots kept on disk until what they draw changes.

A plot is a pure function of its inputs: the reads as analyses use them (cases, engine
results, overrides, central reads, the trial's settings inside each case), the trial's code
(in the title), the plot kind and the drawing code. The cache key is the SHA-256 of all of
these in canonical JSON, together with the requesting role and the trial id, plus a digest
of the drawing modules' source and the matplotlib version. So the key is computed from the
very data a redraw would use, on every request: any write that changes a plot's input
(a subject, timepoint or result, an override, a central read or adjudication, a settings
change that re-assesses) changes the key, and no write can be missed by forgetting to bump
a version. Writes that change nothing a plot draws (a comment, a login) keep the plot.

Entries are JSON files under the instance folder (``RECIST_PLOT_CACHE``, default
``instance/plot-cache``), one folder per trial id, written to a temporary file and renamed
into place, so that several processes share them safely: a reader sees a whole entry or
none, and two processes drawing the same plot write the same bytes. An entry records its
scope (trial, role, kind) and is served only when the scope matches the request as well as
the key. When a plot is drawn, the older entries of the same trial, role and kind are
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from web.services.figures import Plot

# Plots drawn by this process, per kind: tests count draws with it (a hit draws nothing).
DRAWS: Counter[str] = Counter()

_DRAWING_MODULES = (
    "figures.py", "figures_km.py", "figures_subject.py", "plots.py", "plot_used.py",
)  # fmt: skip


@cache
def code_version() -> str:
    """A digest of the code that draws plots and of matplotlib's version: new code draws
    anew."""
    import matplotlib

    digest = hashlib.sha256(matplotlib.__version__.encode())
    folder = Path(__file__).resolve().parent
    for name in _DRAWING_MODULES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def cache_key(scope: Mapping[str, Any], inputs: Any) -> str:
    """The SHA-256 of the scope, the inputs and the drawing code (canonical JSON)."""
    text = json.dumps(
        {"scope": scope, "inputs": inputs, "code": code_version()},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(
    folder: str | os.PathLike[str],
    scope: Mapping[str, Any],
    inputs: Any,
    draw: Callable[[], Plot],
) -> tuple[Plot, str]:
    """The plot for ``scope`` (``trial``: the trial id, ``role``, ``kind``) and ``inputs``:
    read from ``folder`` when drawn before from the same, else drawn by ``draw`` and kept.
    Returns the plot and its key (an ETag)."""
    key = cache_key(scope, inputs)
    where = Path(folder) / f"trial-{int(scope['trial'])}"
    kind = re.sub(r"[^A-Za-z0-9_-]", "_", str(scope["kind"]))
    stem = f"{kind}-{_short(json.dumps(scope, sort_keys=True, default=str))}"
    path = where / f"{stem}-{key}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("scope") == json.loads(json.dumps(scope, default=str)):
            return Plot(**stored["plot"]), key
    except (OSError, ValueError, TypeError, KeyError):
        pass  # not drawn yet, or unreadable: draw it again
    plot = draw()
    DRAWS[str(scope["kind"])] += 1
    _store(where, path, {"scope": scope, "plot": asdict(plot)})
    for older in where.glob(f"{stem}-*.json"):
        if older != path:
            older.unlink(missing_ok=True)
    return plot, key


def _store(where: Path, path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` to ``path`` whole or not at all (a temporary file renamed)."""
    try:
        where.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=where, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(entry, out, default=str)
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs a redraw next time

"""Anchors of the audit chain: its head, kept where the database user cannot rewrite it.

The hash chain (:mod:`web.services.audit`) shows any edit of a record that was not
followed by re-chaining every later one, but someone who can write the table can delete
the newest records, or edit one and recompute every later hash, and the chain still
verifies. An *anchor* closes that gap: ``recist audit anchor`` writes a line

    recist-audit-anchor v1 seq=<n> hash=<64 hex> at=<UTC time> hmac=<64 hex>

with the chain head (the newest record's ``seq`` and ``hash``) and an HMAC-SHA256 of the
rest of the line under a key kept outside the database (``RECIST_AUDIT_KEY``, or a key
file, by default ``instance/audit_key``, created with mode 0600 on first use). Stored
outside the database (appended to a file on another host, printed into a ticket…), every
anchor is later checked by ``recist audit verify --anchors FILE``: its HMAC (nobody
without the key can make or change an anchor), then that the record with its ``seq``
still exists and still has its ``hash``. Records written after the last anchor are
protected by the chain and the reconciliation only, so anchor often (e.g. hourly, cron).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from web.models import AuditRecord
from web.services.audit import last_link

TAG = "recist-audit-anchor v1"
KEY_ENV = "RECIST_AUDIT_KEY"
KEY_FILE_NAME = "audit_key"
MIN_KEY_CHARS = 32  # a key of at least 128 bits written as hex

_LINE = re.compile(
    r"^recist-audit-anchor v1 seq=(?P<seq>\d{1,18}) hash=(?P<hash>[0-9a-f]{64}) "
    r"at=(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) hmac=(?P<mac>[0-9a-f]{64})$"
)


class AnchorKeyError(RuntimeError):
    """The anchor key is missing, unreadable or too short."""


def default_key_file() -> Path:
    """``instance/audit_key`` (the instance folder of :mod:`web.config`)."""
    from web.config import instance_dir

    return instance_dir() / KEY_FILE_NAME


def load_key(key_file: Path | None = None, *, create: bool = False) -> tuple[bytes, str]:
    """The anchor key and where it came from: ``key_file`` when given, else
    ``RECIST_AUDIT_KEY``, else :func:`default_key_file`. ``create`` makes a missing key
    file (a random 256-bit key, mode 0600) — only ``recist audit anchor`` does: a key made
    at verification could never match the anchors already written."""
    if key_file is None and os.environ.get(KEY_ENV):
        key = os.environ[KEY_ENV].strip()
        if len(key) < MIN_KEY_CHARS:
            raise AnchorKeyError(f"{KEY_ENV} is shorter than {MIN_KEY_CHARS} characters")
        return key.encode("utf-8"), KEY_ENV
    path = key_file if key_file is not None else default_key_file()
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made meanwhile by another process: use it
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise AnchorKeyError(
            f"cannot read the audit key {path} ({error.strerror or error}); set {KEY_ENV} "
            "or --key-file to the key the anchors were made with"
        ) from None
    if len(key) < MIN_KEY_CHARS:
        raise AnchorKeyError(f"the audit key {path} is shorter than {MIN_KEY_CHARS} characters")
    return key.encode("utf-8"), str(path)


@dataclass(frozen=True)
class Anchor:
    """One anchor: the chain head ``(seq, hash)`` at ``at`` (UTC) and its HMAC."""

    seq: int
    hash: str
    at: str
    mac: str

    @property
    def message(self) -> str:
        return f"{TAG} seq={self.seq} hash={self.hash} at={self.at}"

    @property
    def line(self) -> str:
        return f"{self.message} hmac={self.mac}"


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def make_anchor(connection: Connection, key: bytes, *, now: datetime | None = None) -> Anchor:
    """An anchor of the chain's current head (``seq=0`` and 64 zeros on an empty trail)."""
    seq, head = last_link(connection)
    at = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = Anchor(seq, head, at, "")
    return Anchor(seq, head, at, _mac(key, unsigned.message))


def parse_anchor(line: str) -> Anchor | None:
    """An anchor line read back, ``None`` when the line is not one."""
    match = _LINE.match(line.strip())
    if match is None:
        return None
    return Anchor(int(match["seq"]), match["hash"], match["at"], match["mac"])


@dataclass(frozen=True)
class AnchorReport:
    """The outcome of :func:`check_anchors`; ``problem`` names the first failing anchor."""

    anchors: int
    last_seq: int | None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def check_anchors(connection: Connection, lines: Iterable[str], key: bytes) -> AnchorReport:
    """Check every anchor line (blank lines and ``#`` comments are skipped): its HMAC,
    then that the audit record with its ``seq`` exists and has its ``hash``."""
    count = 0
    last: int | None = None
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        anchor = parse_anchor(text)
        where = f"anchor line {number}"
        if anchor is None:
            expected = f"{TAG} seq=… hash=… at=… hmac=…"
            return AnchorReport(count, last, f"{where} is not an anchor ({expected})")
        where += f" (seq {anchor.seq}, {anchor.at})"
        if not hmac.compare_digest(anchor.mac, _mac(key, anchor.message)):
            return AnchorReport(
                count,
                last,
                f"{where}: its HMAC does not match — the anchor was altered, or made with "
                "another key",
            )
        if anchor.seq > 0:
            stored = connection.execute(
                select(AuditRecord.hash).where(AuditRecord.seq == anchor.seq)
            ).scalar()
            if stored is None:
                newest = last_link(connection)[0]
                return AnchorReport(
                    count,
                    last,
                    f"{where}: audit record seq {anchor.seq} no longer exists (the trail now "
                    f"ends at seq {newest}) — records were deleted",
                )
            if stored != anchor.hash:
                return AnchorReport(
                    count,
                    last,
                    f"{where}: audit record seq {anchor.seq} now has hash {stored[:16]}…, the "
                    f"anchor says {anchor.hash[:16]}… — the trail was changed and re-chained",
                )
        count += 1
        last = anchor.seq if last is None else max(last, anchor.seq)
    return AnchorReport(count, last)

"""Key/scope JSON state with a TTL, and sentinels (a rate limit that fires at most once per interval).

State is where hooks and agents leave small facts for each other ("last review verdict", "which files
are claimed"), so the kernel guards what goes in: valid JSON, bounded in size and nesting (a runaway
hook must not bloat every reader's database), and nothing that looks like a credential, because
everything in the database is readable by every tool that watches the project, Bigend included.

Every change writes its `state` event in the same transaction; reads never write, so an expired row
simply stops being visible until `prune` removes it.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from kernel import clock, events
from kernel import eventtypes as et
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import NotFound, UsageError
from kernel.model import JsonObject, Sentinel, StateEntry

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_NAME_LENGTH = 200

# Object keys whose non-empty string values are credentials by name (compared lower-case with
# separators removed, as a suffix: "github_token", "X-Api-Key" and "client_secret" all match, while
# "tokens" or "token_count" do not, so token accounting stays storable).
_SECRET_KEY_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "credentials",
    "authorization",
)

# Well-known credential formats, matched anywhere inside a string value.
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("a private key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
        ("an OpenAI/Anthropic API key", r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
        ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
        ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
        ("an npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
        ("a JSON Web Token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    )
)


@dataclass(frozen=True, slots=True)
class SentinelCheck:
    """`ic sentinel check --json`: whether this call may proceed, and when the next one may."""

    name: str
    scope: str
    allowed: bool
    last_fired: int
    next_allowed_at: int

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Pruned:
    """`ic state prune --json`, `ic sentinel prune --json`: how many rows were removed."""

    pruned: int

    def to_json(self) -> JsonObject:
        return asdict(self)


# -- payload policy ---------------------------------------------------------------------------------


def check_name(value: str, what: str, *, allow_empty: bool = False) -> str:
    """Keys, scopes and names end up in tab-separated tables: no control characters, bounded length."""
    if not value and not allow_empty:
        raise UsageError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise UsageError(f"{what} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"{what} {value!r} contains control characters")
    if not events.is_unicode(value):
        raise UsageError(f"{what} is not valid UTF-8 text")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse_payload(text: str, *, what: str = "payload") -> Any:
    """Parse JSON text under the payload policy; every refusal is a one-line UsageError (exit 3)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise UsageError(f"{what} is {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes (64 KiB)")
    if not text.strip():
        raise UsageError(f"{what} is empty; give a JSON value (e.g. on stdin: echo '{{\"k\": 1}}' | ...)")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise UsageError(f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    check_payload(value, what=what)
    return value


def encode_payload(value: Any, *, what: str = "payload", key: str | None = None) -> str:
    """Check a payload and return its canonical JSON (what the database stores)."""
    check_payload(value, what=what, key=key)
    try:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} cannot be stored as JSON: {exc}") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise UsageError(f"{what} is {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes (64 KiB)")
    return text


def check_payload(value: Any, *, what: str = "payload", key: str | None = None) -> None:
    """Refuse over-deep values and anything that looks like a credential (see the module docstring).

    `key` is the name the whole value is stored under (a state key), judged like an object key.
    """
    stack: list[tuple[Any, str, str | None, int]] = [(value, "$", key, 0)]
    while stack:
        item, path, name, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise UsageError(f"{what} is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for k, v in item.items():
                    if isinstance(k, str) and not events.is_unicode(k):
                        raise UsageError(f"{what} has a key that is not valid Unicode text (at {path})")
                    stack.append((v, f"{path}.{k}", str(k), depth + 1))
            else:
                for i, v in enumerate(item):
                    stack.append((v, f"{path}[{i}]", None, depth + 1))
        elif isinstance(item, str):
            if not events.is_unicode(item):
                raise UsageError(f"{what} holds text that is not valid Unicode (a lone surrogate) at {path}")
            label = _secret_label(item, name)
            if label:
                where = path if len(path) <= 80 else path[:77] + "..."
                raise UsageError(
                    f"{what} looks like it holds a secret ({label} at {where}); keep credentials out of "
                    "the kernel and store a reference (e.g. the name of an environment variable) instead"
                )


def _secret_label(text: str, name: str | None) -> str | None:
    if name is not None and text:
        normalized = "".join(ch for ch in name.lower() if ch.isalnum())
        if normalized.endswith(_SECRET_KEY_SUFFIXES):
            return f"a value named {name!r}"
    for label, pattern in _SECRET_PATTERNS:
        if pattern.search(text):
            return label
    return None


# -- state -------------------------------------------------------------------------------------------


def set_state(
    conn: sqlite3.Connection, key: str, scope: str, payload: Any, *, ttl: float | None = None
) -> StateEntry:
    """Create or replace `key` in `scope`; a TTL (seconds, > 0) makes it invisible after that long."""
    check_name(key, "key")
    check_name(scope, "scope", allow_empty=True)
    text = encode_payload(payload, key=key)
    if ttl is not None and ttl <= 0:
        raise UsageError("--ttl must be greater than zero")
    now = clock.now()
    expires_at = None if ttl is None else now + math.ceil(ttl)
    with write_tx(conn):
        # A row that had already expired is a new entry: it gets a fresh created_at.
        row = conn.execute(
            "INSERT INTO state (key, scope, payload, expires_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, scope) DO UPDATE SET "
            "payload = excluded.payload, expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
            "created_at = CASE WHEN state.expires_at IS NOT NULL AND state.expires_at <= excluded.updated_at "
            "THEN excluded.created_at ELSE state.created_at END "
            f"RETURNING {StateEntry.COLUMNS}",
            (key, scope, text, expires_at, now, now),
        ).fetchone()
        events.record(
            conn, source=et.STATE, type=et.STATE_SET, reason=key,
            payload={"scope": scope, "expires_at": expires_at},
        )  # fmt: skip
    return StateEntry.from_row(row)


def get_state(conn: sqlite3.Connection, key: str, scope: str = "") -> StateEntry:
    check_name(key, "key")
    check_name(scope, "scope", allow_empty=True)
    entry = q.fetch_one(conn, q.STATE_GET, key, scope, clock.now())
    if entry is None:
        raise NotFound(f"no state {key!r} in {_scope_text(scope)} (never set, deleted or expired)")
    return entry


def delete_state(conn: sqlite3.Connection, key: str, scope: str = "") -> StateEntry:
    """Remove a live entry and return it as it was; a missing or expired one is NotFound."""
    check_name(key, "key")
    check_name(scope, "scope", allow_empty=True)
    with write_tx(conn):
        entry = q.fetch_one(conn, q.STATE_GET, key, scope, clock.now())
        if entry is None:
            raise NotFound(f"no state {key!r} in {_scope_text(scope)} to delete")
        conn.execute("DELETE FROM state WHERE key = ? AND scope = ?", (key, scope))
        events.record(conn, source=et.STATE, type=et.STATE_DELETED, reason=key, payload={"scope": scope})
    return entry


def list_state(conn: sqlite3.Connection, scope: str | None = None) -> list[StateEntry]:
    if scope is not None:
        check_name(scope, "scope", allow_empty=True)
    if scope is None:
        return q.fetch_all(conn, q.STATE_LIVE, clock.now())
    return q.fetch_all(conn, q.STATE_LIVE_OF_SCOPE, scope, clock.now())


def prune_state(conn: sqlite3.Connection) -> Pruned:
    """Delete expired rows (expiry hides them already; this reclaims the space)."""
    with write_tx(conn):
        count = conn.execute(
            "DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?", (clock.now(),)
        ).rowcount
        if count:
            events.record(conn, source=et.STATE, type=et.STATE_PRUNED, payload={"count": count})
    return Pruned(count)


def _scope_text(scope: str) -> str:
    return f"scope {scope!r}" if scope else "the global scope"


# -- sentinels ---------------------------------------------------------------------------------------


def check_sentinel(conn: sqlite3.Connection, name: str, scope: str, interval: float) -> SentinelCheck:
    """Fire the sentinel if `interval` seconds have passed since it last fired; atomic across processes.

    The read and the firing happen in one BEGIN IMMEDIATE transaction, so when many processes check the
    same sentinel at once exactly one of them is allowed.
    """
    check_name(name, "sentinel name")
    check_name(scope, "scope", allow_empty=True)
    if interval < 0:
        raise UsageError("--interval must not be negative")
    wait = math.ceil(interval)
    now = clock.now()
    with write_tx(conn):
        current = q.fetch_one(conn, q.SENTINEL_BY_NAME, name, scope)
        if current is not None and now - current.last_fired < interval:
            return SentinelCheck(name, scope, False, current.last_fired, current.last_fired + wait)
        conn.execute(
            "INSERT INTO sentinels (name, scope, last_fired) VALUES (?, ?, ?) "
            "ON CONFLICT (name, scope) DO UPDATE SET last_fired = excluded.last_fired",
            (name, scope, now),
        )
        events.record(conn, source=et.STATE, type=et.SENTINEL_FIRED, reason=name, payload={"scope": scope})
    return SentinelCheck(name, scope, True, now, now + wait)


def reset_sentinel(conn: sqlite3.Connection, name: str, scope: str = "") -> Sentinel:
    """Forget when the sentinel last fired (its next check is allowed); returns the removed row."""
    check_name(name, "sentinel name")
    check_name(scope, "scope", allow_empty=True)
    with write_tx(conn):
        current = q.fetch_one(conn, q.SENTINEL_BY_NAME, name, scope)
        if current is None:
            raise NotFound(f"no sentinel {name!r} in {_scope_text(scope)}")
        conn.execute("DELETE FROM sentinels WHERE name = ? AND scope = ?", (name, scope))
        events.record(conn, source=et.STATE, type=et.SENTINEL_RESET, reason=name, payload={"scope": scope})
    return current


def list_sentinels(conn: sqlite3.Connection) -> list[Sentinel]:
    return q.fetch_all(conn, q.SENTINELS_ALL)


def prune_sentinels(conn: sqlite3.Connection, older_than: float) -> Pruned:
    """Delete sentinels that last fired more than `older_than` seconds ago."""
    cutoff = clock.now() - math.ceil(older_than)
    with write_tx(conn):
        count = conn.execute("DELETE FROM sentinels WHERE last_fired < ?", (cutoff,)).rowcount
        if count:
            events.record(conn, source=et.STATE, type=et.SENTINEL_PRUNED, payload={"count": count})
    return Pruned(count)

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
# TTLs, intervals and ages beyond a century are typos (or overflow SQLite's integers once added to now).
MAX_DURATION_S = 100 * 365 * 86400
_LONG_DURATION_HINT = {
    "ttl": "leave --ttl out for an entry that never expires",
    "interval": "to remember that something happened once, use `ic state set`",
}

# -- what counts as a secret ---------------------------------------------------------------------------
#
# Two signals, either of which refuses a string value:
#
# 1. A well-known credential format anywhere in the text (provider-prefixed keys, PEM private keys, JWTs,
#    bearer tokens). Where a format's body could also be ordinary hyphenated prose ("sk-learn-style"),
#    the body must look random: it holds a digit or an upper-case letter.
# 2. A value stored under a credential's name: an object key (or the state key itself) whose name,
#    lower-cased without separators, ends in one of the suffixes below ("github_token", "X-Api-Key",
#    "client_secret"; not "tokens" or "token_count", so token accounting stays storable). List items
#    are judged under the list's name. Under such a name these always pass: "", a reference to where
#    the secret lives ("$OPENAI_API_KEY", "${VAR}", "env:VAR"), a mask ("***") and a few status words
#    ("none", "redacted", "expired", ...). Anything else is refused under a password-like name
#    (passphrases and "Basic ..." headers contain spaces); under the other names ordinary prose passes
#    ("the token expired at noon": two or more words, none of which looks random), a single word does not.

# Under these names every value other than a reference, mask or status word is a secret.
_STRICT_SECRET_NAMES = ("password", "passwd", "passphrase", "authorization", "privatekey")
# Under these names a sentence is ordinary text; a single word or a random-looking word is a secret.
_SECRET_NAMES = ("secret", "token", "apikey", "accesskey", "credential", "credentials")
_STATUS_WORDS = frozenset(
    {"none", "null", "nil", "unset", "set", "n/a", "na", "true", "false", "yes", "no", "empty", "unknown"}
    | {"redacted", "hidden", "masked", "missing", "expired", "invalid", "revoked", "rotated", "required"}
)
_REFERENCE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}|env:[A-Za-z_][A-Za-z0-9_]*")
_MASK = re.compile(r"[*\u2022xX.#_-]+")
# A word of prose that is really a key: 16+ characters of a token alphabet with letters and digits.
_RANDOM_WORD = re.compile(r"[A-Za-z0-9_+=-]{16,}")

# Well-known credential formats, matched anywhere inside a string value: (label, pattern, whether the
# pattern's `body` group must look random). Prefixes that cannot start a word of prose need no check.
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = tuple(
    (label, re.compile(pattern, re.ASCII), random_body)
    for label, pattern, random_body in (
        ("a private key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----", False),
        ("an OpenAI/Anthropic key", r"\bsk-(?:proj-|ant-|svcacct-|admin-)?(?P<body>[\w-]{20,})", True),
        ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", False),
        ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", False),
        ("a Slack token", r"\bxox[abprs]-(?P<body>[A-Za-z0-9-]{10,})", True),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}", False),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}", False),
        ("an npm token", r"\bnpm_[A-Za-z0-9]{36}\b", False),
        ("a JSON Web Token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", False),
        ("a bearer token", r"\bBearer\s+(?P<body>[A-Za-z0-9._~+/-]{16,})", True),
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
    """Keys, scopes and names end up in tab-separated tables and terminals: no control characters
    (C0, DEL or C1, which a terminal would obey), bounded length."""
    if not value and not allow_empty:
        raise UsageError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise UsageError(f"{what} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not events.is_unicode(value):
        raise UsageError(f"{what} is not valid UTF-8 text")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        raise UsageError(f"{what} {value!r} contains control characters")
    return value


def check_duration(seconds: float, flag: str) -> float:
    """TTLs and intervals become unix times: bound them so the sum still fits SQLite's 64-bit integer."""
    if seconds > MAX_DURATION_S:
        raise UsageError(f"--{flag} is longer than 100 years; {_LONG_DURATION_HINT.get(flag, 'use less')}")
    return seconds


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
        raise UsageError(f'{what} is empty; give a JSON value such as {{"k": 1}}')
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
    """Refuse over-deep values and anything that looks like a credential (rules above).

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
                    stack.append((v, _child_path(path, str(k)), str(k), depth + 1))
            else:
                stack.extend((v, f"{path}[{i}]", name, depth + 1) for i, v in enumerate(item))
        elif isinstance(item, str):
            if not events.is_unicode(item):
                raise UsageError(f"{what} holds text that is not valid Unicode (a lone surrogate) at {path}")
            label = secret_label(item, name)
            if label:
                where = path if len(path) <= 80 else path[:77] + "..."
                raise UsageError(
                    f"{what} looks like it holds a secret ({label} at {where}); keep credentials out of "
                    'the kernel and store a reference to where it lives instead (e.g. "$OPENAI_API_KEY")'
                )


def _child_path(path: str, key: str) -> str:
    """`$.name`, or `$["odd key"]` with JSON escapes, so an error message stays one printable line."""
    if key.isascii() and key.replace("_", "a").replace("-", "a").isalnum():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key[:40])}]"


def secret_label(text: str, name: str | None = None) -> str | None:
    """What kind of secret `text` (stored under `name`) looks like, or None when it looks ordinary."""
    for label, pattern, random_body in _SECRET_PATTERNS:
        for found in pattern.finditer(text):
            if not random_body or any(ch.isdigit() or ch.isupper() for ch in found.group("body")):
                return label
    if name is None or not text or _harmless_under_a_secret_name(text):
        return None
    normalized = "".join(ch for ch in name.lower() if ch.isalnum())
    if normalized.endswith(_STRICT_SECRET_NAMES):
        return "a value under a password-like name"
    if normalized.endswith(_SECRET_NAMES) and not _is_prose(text):
        return "a value under a secret-like name"
    return None


def _harmless_under_a_secret_name(text: str) -> bool:
    """References to a secret, masks and status words say something about a secret without holding it."""
    word = text.strip()
    return (
        _REFERENCE.fullmatch(word) is not None
        or _MASK.fullmatch(word) is not None
        or word.strip("<>[]()").lower() in _STATUS_WORDS
    )


def _is_prose(text: str) -> bool:
    """Two or more words, none of which is a random-looking run of letters and digits."""
    words = text.split()
    if len(words) < 2:
        return False
    for run in _RANDOM_WORD.findall(text):
        if any(ch.isdigit() for ch in run) and any(ch.isalpha() for ch in run):
            return False
    return True


# -- state -------------------------------------------------------------------------------------------


def set_state(
    conn: sqlite3.Connection, key: str, scope: str, payload: Any, *, ttl: float | None = None
) -> StateEntry:
    """Create or replace `key` in `scope`; a TTL (seconds, > 0) makes it invisible after that long.

    The clock has whole seconds: `expires_at` is now + ceil(ttl), and the entry is live while the clock
    reads less than that, so it stays visible for between ceil(ttl) - 1 and ceil(ttl) seconds.
    """
    check_name(key, "key")
    check_name(scope, "scope", allow_empty=True)
    text = encode_payload(payload, key=key)
    if ttl is not None and ttl <= 0:
        raise UsageError("--ttl must be greater than zero")
    if ttl is not None:
        check_duration(ttl, "ttl")
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
    check_duration(interval, "interval")
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
    """Delete sentinels that last fired more than `older_than` seconds ago (a century at most)."""
    cutoff = clock.now() - math.ceil(min(older_than, MAX_DURATION_S))
    with write_tx(conn):
        count = conn.execute("DELETE FROM sentinels WHERE last_fired < ?", (cutoff,)).rowcount
        if count:
            events.record(conn, source=et.STATE, type=et.SENTINEL_PRUNED, payload={"count": count})
    return Pruned(count)

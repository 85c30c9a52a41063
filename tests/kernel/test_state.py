"""`ic state`: round trips, scopes, TTL, pruning, and the payload policy (size, depth, secrets)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import sqlite3
import subprocess

import pytest
from pytest import MonkeyPatch

from tests.conftest import Project, ic_executable

NOW = 1_700_000_000


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IC_NOW", str(NOW))


def _events(project: Project) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(project.db)
    try:
        return [tuple(r) for r in conn.execute("SELECT source, type, reason FROM events ORDER BY id")]
    finally:
        conn.close()


def _state_rows(project: Project) -> int:
    conn = sqlite3.connect(project.db)
    try:
        return int(conn.execute("SELECT count(*) FROM state").fetchone()[0])
    finally:
        conn.close()


def test_set_then_get_round_trips_the_payload(project: Project) -> None:
    payload = {"files": ["a.py", "b.py"], "n": 3, "ok": True, "note": "héllo ✓"}
    result = project.ic("state", "set", "claims", "run1", "--json", stdin=json.dumps(payload))
    assert result.code == 0, result.err
    entry = result.json()
    assert entry == {
        "key": "claims",
        "scope": "run1",
        "payload": payload,
        "expires_at": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    got = project.ic("state", "get", "claims", "run1")
    assert got.code == 0
    assert json.loads(got.out) == payload
    assert "✓" in got.out  # non-ASCII kept as is
    assert project.ic("state", "get", "claims", "run1", "--json").json() == entry
    assert _events(project) == [("state", "state.set", "claims")]


def test_scopes_are_independent_and_default_is_global(project: Project) -> None:
    assert project.ic("state", "set", "k", stdin="1").code == 0
    assert project.ic("state", "set", "k", "other", stdin="2").code == 0
    assert project.ic("state", "get", "k").out.strip() == "1"
    assert project.ic("state", "get", "k", "other").out.strip() == "2"
    assert project.ic("state", "get", "k", "third").code == 1


def test_overwrite_keeps_created_at_and_moves_updated_at(project: Project, monkeypatch: MonkeyPatch) -> None:
    project.ic("state", "set", "k", stdin='"v1"')
    monkeypatch.setenv("IC_NOW", str(NOW + 50))
    entry = project.ic("state", "set", "k", "--json", stdin='"v2"').json()
    assert (entry["payload"], entry["created_at"], entry["updated_at"]) == ("v2", NOW, NOW + 50)


def test_ttl_expiry_hides_the_entry_and_prune_removes_it(project: Project, monkeypatch: MonkeyPatch) -> None:
    entry = project.ic("state", "set", "lease", "--ttl=10s", "--json", stdin="{}").json()
    assert entry["expires_at"] == NOW + 10
    project.ic("state", "set", "forever", stdin="{}")
    monkeypatch.setenv("IC_NOW", str(NOW + 9))
    assert project.ic("state", "get", "lease").code == 0
    monkeypatch.setenv("IC_NOW", str(NOW + 10))
    missing = project.ic("state", "get", "lease")
    assert missing.code == 1
    assert "expired" in missing.err
    assert [e["key"] for e in project.ic("state", "list", "--json").json_lines()] == ["forever"]
    assert _state_rows(project) == 2  # reads never write: the expired row waits for prune
    pruned = project.ic("state", "prune", "--json")
    assert pruned.code == 0
    assert pruned.json() == {"pruned": 1}
    assert _state_rows(project) == 1
    assert project.ic("state", "prune", "--json").json() == {"pruned": 0}
    assert _events(project)[-1][:2] == ("state", "state.pruned")


def test_setting_an_expired_key_again_starts_a_new_entry(project: Project, monkeypatch: MonkeyPatch) -> None:
    project.ic("state", "set", "lease", "--ttl=5s", stdin="1")
    monkeypatch.setenv("IC_NOW", str(NOW + 100))
    entry = project.ic("state", "set", "lease", "--json", stdin="2").json()
    assert (entry["created_at"], entry["expires_at"]) == (NOW + 100, None)


def test_delete_returns_the_entry_then_is_not_found(project: Project) -> None:
    project.ic("state", "set", "k", "s", stdin="[1, 2]")
    deleted = project.ic("state", "delete", "k", "s", "--json")
    assert deleted.code == 0
    assert deleted.json()["payload"] == [1, 2]
    again = project.ic("state", "delete", "k", "s")
    assert again.code == 1
    assert again.err.startswith("ic: no state 'k'")
    assert project.ic("state", "get", "k", "s").code == 1
    assert [e[1] for e in _events(project)] == ["state.set", "state.deleted"]


def test_list_text_is_a_tab_separated_table_and_scope_filters(project: Project) -> None:
    project.ic("state", "set", "b", "s1", stdin='{"x": 1}')
    project.ic("state", "set", "a", "s1", "--ttl=1h", stdin="2")
    project.ic("state", "set", "c", "s2", stdin="3")
    lines = project.ic("state", "list").out.splitlines()
    assert lines[0].split("\t") == ["key", "scope", "expires_at", "updated_at", "payload"]
    assert [line.split("\t") for line in lines[1:]] == [
        ["a", "s1", str(NOW + 3600), str(NOW), "2"],
        ["b", "s1", "-", str(NOW), '{"x":1}'],
        ["c", "s2", "-", str(NOW), "3"],
    ]
    only = project.ic("state", "list", "--scope=s2", "--json").json_lines()
    assert [(e["key"], e["scope"]) for e in only] == [("c", "s2")]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{bad", "not valid JSON"),
        ("", "empty"),
        ("NaN", "not valid JSON"),
        ("1e999", "out of range"),
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ("[" * 5000 + "]" * 5000, "nested deeper than 32"),
        ('"' + "x" * (64 * 1024) + '"', "64 KiB"),
    ],
)
def test_malformed_payloads_exit_3_and_write_nothing(project: Project, stdin: str, message: str) -> None:
    result = project.ic("state", "set", "k", stdin=stdin)
    assert result.code == 3, result.err
    assert message in result.err
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert _state_rows(project) == 0
    assert _events(project) == []


def test_depth_limit_allows_exactly_32_levels(project: Project) -> None:
    assert project.ic("state", "set", "deep", stdin="[" * 32 + "]" * 32).code == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"api_key": "abc123"},
        {"config": {"github_token": "whatever"}},
        {"db": [{"Password": "hunter2"}]},
        {"headers": {"X-Api-Key": "k"}},
        {"client_secret": "s"},
        "sk-proj-" + "a1B2" * 8,
        {"note": "use ghp_" + "x" * 36 + " for pushes"},
        {"aws": "AKIAIOSFODNN7EXAMPLE"},
        {"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----"},
        {"slack": "xoxb-123456789012-abcdefghij"},
        ["ok", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF"],
        # Password-like names: a passphrase or an auth header has spaces and is still a secret.
        {"password": "correct horse battery staple"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"db_passwords": {"password": ["hunter2", "$OK_REF"]}},
        # Other secret names: a single word, or a sentence that carries a random-looking key.
        {"token": "abcd"},
        {"github_token": "use 9f8e7d6c5b4a39281706f5e4 for pushes"},
        {"cmd": "curl -H 'Authorization: Bearer 0a1b2c3d4e5f6a7b8c9d' https://api.example"},
        {"note": "key sk-" + "Zq3" * 12},
        "sk-ant-api03-" + "x" * 40,
    ],
)
def test_values_that_look_like_secrets_are_refused(project: Project, payload: object) -> None:
    result = project.ic("state", "set", "k", stdin=json.dumps(payload))
    assert result.code == 3, result.err
    assert "secret" in result.err
    assert result.err.count("\n") == 1
    assert _state_rows(project) == 0


def test_the_state_key_itself_counts_as_a_secret_name(project: Project) -> None:
    assert project.ic("state", "set", "openai_api_key", stdin='"abc"').code == 3
    assert project.ic("state", "set", "openai_api_key", stdin='{"env": "OPENAI_API_KEY"}').code == 0
    assert project.ic("state", "set", "openai_api_key", stdin='"$OPENAI_API_KEY"').code == 0
    assert project.ic("state", "set", "token", stdin='"refresh the token before the demo"').code == 0
    assert project.ic("state", "set", "db_password", stdin='"correct horse battery staple"').code == 3


def test_a_secret_under_a_hostile_key_is_reported_on_one_printable_line(project: Project) -> None:
    payload = {"a\nb\x1b[31m\x9b": {"api_key": "abc"}}
    result = project.ic("state", "set", "k", stdin=json.dumps(payload))
    assert result.code == 3
    assert '(a value under a secret-like name at $["a\\nb\\u001b[31m\\u009b"].api_key)' in result.err
    assert result.err.count("\n") == 1
    assert all(32 <= ord(ch) < 127 for ch in result.err.rstrip("\n"))


def test_secret_refusal_does_not_echo_the_secret(project: Project) -> None:
    secret = "ghp_" + "Z" * 36
    result = project.ic("state", "set", "k", stdin=json.dumps({"x": secret}))
    assert result.code == 3
    assert secret not in result.err


@pytest.mark.parametrize(
    "payload",
    [
        {"tokens": 1200, "max_tokens": 4000, "token_count": "12", "input_tokens": 5},
        {"token": 3, "password": "", "secret": None},
        {"secret_name": "OPENAI_API_KEY", "password_env": "DB_PASSWORD"},
        {"skip": "sk-short", "path": "/home/me/.ssh/id_ed25519"},
        # The word "token" (or secret, password) in ordinary text.
        {"note": "rotate the token tomorrow; the password policy changed and the secret santa is on"},
        "ask the reviewer for a new token",
        {"token": "the token expired at noon", "secret": "kept in the team vault"},
        {"api_key": "not configured yet", "access_key": "see the wiki page"},
        # References to where a secret lives, masks and status words.
        {"api_key": "$OPENAI_API_KEY", "token": "${GITHUB_TOKEN}", "password": "env:DB_PASSWORD"},
        {"password": "********", "client_secret": "<redacted>", "token": "expired", "passphrase": "unset"},
        # Prefixes of key formats inside ordinary words.
        {"note": "sk-learn-compatible-estimator-interface", "auth": "Bearer tokens are short-lived"},
        {"repo": "ghp_pages", "ids": ["AKIA", "xoxo-hugs-and-kisses"]},
    ],
)
def test_lookalikes_that_are_not_secrets_are_stored(project: Project, payload: object) -> None:
    result = project.ic("state", "set", "k", stdin=json.dumps(payload))
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["state", "set", "k", "--ttl=soon"], "--ttl"),
        (["state", "set", "k", "--ttl=0"], "greater than zero"),
        (["state", "set", "bad\tkey"], "control characters"),
        (["state", "set", "k" * 201], "limit is 200"),
        (["state", "set", ""], "must not be empty"),
        (["state", "get"], "required"),
        (["state", "frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_3(project: Project, args: list[str], message: str) -> None:
    result = project.ic(*args, stdin="{}")
    assert result.code == 3, result.err
    assert message in result.err
    assert result.err.count("\n") == 1


def test_missing_database_is_exit_2(project: Project) -> None:
    result = project.ic("state", "get", "k", cwd=project.dir.parent)
    assert result.code == 2
    assert "ic init" in result.err
    result = project.ic("--db", str(project.dir / "nope" / "x.db"), "state", "list")
    assert result.code == 2
    assert "does not exist" in result.err


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "get", "k"],
        ["state", "list"],
        ["sentinel", "check", "s", "--interval=1m"],
        ["events", "tail", "--all"],
        ["events", "record", "--source=hook", "--type=t"],
        ["events", "cursor", "list"],
    ],
)
@pytest.mark.parametrize("damage", ["corrupt", "newer", "directory"])
def test_unusable_databases_are_exit_2_with_one_line(project: Project, argv: list[str], damage: str) -> None:
    target = project.dir / "bad.db"
    if damage == "corrupt":
        target.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    elif damage == "newer":
        shutil.copy(project.db, target)
        raw = sqlite3.connect(target)
        raw.execute("PRAGMA user_version = 99")
        raw.commit()
        raw.close()
    else:
        target.mkdir()
    result = project.ic(f"--db={target}", *argv, stdin="{}")
    assert result.code == 2, result.err
    assert result.err.startswith("ic: ") and result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_text_that_is_not_unicode_is_refused_not_crashed_on(project: Project) -> None:
    lone = project.ic("state", "set", "k", stdin='{"a": "\\ud800"}')
    assert lone.code == 3, lone.err
    assert "not valid Unicode" in lone.err
    bad = "\udcff"  # what Python makes of an argv byte that is not UTF-8
    for argv in (["state", "get", bad], ["state", "set", "k", bad], ["sentinel", "reset", bad]):
        result = project.ic(*argv, stdin="1")
        assert result.code == 3, (argv, result.err)
        assert "not valid UTF-8" in result.err
    assert _state_rows(project) == 0


def test_ttl_boundaries_fractions_round_up_and_the_expiry_second_is_already_gone(
    project: Project, monkeypatch: MonkeyPatch
) -> None:
    entry = project.ic("state", "set", "lease", "s", "--ttl=1.5s", "--json", stdin="1").json()
    assert entry["expires_at"] == NOW + 2
    assert (
        project.ic("state", "set", "blink", "--ttl=100ms", "--json", stdin="1").json()["expires_at"]
        == NOW + 1
    )
    monkeypatch.setenv("IC_NOW", str(NOW + 1))
    assert project.ic("state", "get", "lease", "s").code == 0
    assert [e["key"] for e in project.ic("state", "list", "--json").json_lines()] == ["lease"]
    assert project.ic("state", "prune", "--json").json() == {"pruned": 1}  # blink: expires_at == now
    monkeypatch.setenv("IC_NOW", str(NOW + 2))
    assert project.ic("state", "get", "lease", "s").code == 1
    assert project.ic("state", "list", "--scope=s").out.splitlines()[1:] == []
    gone = project.ic("state", "delete", "lease", "s")
    assert (gone.code, gone.err) == (1, "ic: no state 'lease' in scope 's' to delete\n")
    assert _state_rows(project) == 1  # an expired row is invisible, and stays until prune
    assert project.ic("state", "prune", "--json").json() == {"pruned": 1}
    assert _state_rows(project) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["state", "set", "k", "--ttl=1e300d"], "--ttl is longer than 100 years; leave --ttl out"),
        (["state", "set", "k", "--ttl=36501d"], "--ttl is longer than 100 years"),
        (["sentinel", "check", "s", "--interval=1e300d"], "--interval is longer than 100 years"),
    ],
)
def test_durations_beyond_a_century_are_usage_errors_not_overflows(
    project: Project, args: list[str], message: str
) -> None:
    result = project.ic(*args, stdin="1")
    assert result.code == 3, result.err
    assert message in result.err and result.err.count("\n") == 1
    assert _state_rows(project) == 0 and _events(project) == []


def test_prune_older_than_a_huge_age_prunes_nothing_instead_of_failing(project: Project) -> None:
    project.ic("sentinel", "check", "s", "--interval=1s")
    result = project.ic("sentinel", "prune", "--older-than=1e300d", "--json")
    assert (result.code, result.err) == (0, "")
    assert result.json() == {"pruned": 0}
    assert project.ic("state", "set", "k", "--ttl=36500d", "--json", stdin="1").code == 0


def test_stdin_that_is_a_terminal_or_closed_is_refused_without_waiting(project: Project) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*ic_executable(), "state", "set", "k"],
            cwd=project.dir, stdin=follower, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 3
    assert proc.stderr.startswith("ic: stdin is a terminal or closed; pipe the JSON payload on stdin")
    closed = subprocess.run(
        ["bash", "-c", f"{' '.join(ic_executable())} state set k <&-"],
        cwd=project.dir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (closed.returncode, closed.stderr.count("\n")) == (3, 1)
    assert "stdin is a terminal or closed" in closed.stderr
    assert _state_rows(project) == 0


def test_a_byte_order_mark_is_not_part_of_the_payload(project: Project) -> None:
    result = project.ic("state", "set", "k", "--json", stdin='\ufeff{"a": 1}')
    assert result.code == 0, result.err
    assert result.json()["payload"] == {"a": 1}


def test_c1_control_characters_are_refused_in_names_and_escaped_in_text_output(project: Project) -> None:
    for argv in (["state", "set", "k\x9b"], ["state", "set", "k", "s\x85"], ["sentinel", "reset", "n\x7f"]):
        result = project.ic(*argv, stdin="1")
        assert result.code == 3, (argv, result.err)
        assert "control characters" in result.err
    value = {"v": "esc\x1b[2J del\x7f csi\x9b2J ✓"}
    assert project.ic("state", "set", "k", stdin=json.dumps(value)).code == 0
    got = project.ic("state", "get", "k").out
    assert got == '{"v":"esc\\u001b[2J del\\u007f csi\\u009b2J ✓"}\n'
    assert json.loads(got) == value
    listed = project.ic("state", "list").out.splitlines()[1]
    assert listed.endswith('{"v":"esc\\u001b[2J del\\u007f csi\\u009b2J ✓"}')
    assert project.ic("state", "get", "k", "--json").json()["payload"] == value

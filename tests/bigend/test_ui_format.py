"""The pure helpers behind the widgets: formatting, filters, untrusted text, view selection."""

from __future__ import annotations

from dataclasses import replace

from bigend.core.status import UnifiedStatus
from bigend.ui import render
from bigend.ui.filtering import parse_filter
from bigend.ui.selectors import (
    attention_reason,
    child_projects,
    dashboard_runs,
    find_run,
    portfolio_children,
    portfolio_members,
    project_runs,
)
from bigend.ui.text import clean, literal
from tests.snapshots.fixture_state import NOW, build_state, event, project, run, with_portfolio


def test_durations_fit_six_cells() -> None:
    cases = {0: "0s", 59: "59s", 60: "1m", 3599: "59m", 3600: "1h00m", 5 * 3600 + 7 * 60: "5h07m",
             86400 * 3 + 3600 * 4: "3d04h", 86400 * 150: "150d", -5: "0s"}  # fmt: skip
    for seconds, text in cases.items():
        assert render.duration(seconds) == text
        assert len(text) <= 6


def test_age_colours() -> None:
    assert render.age_style(3600) == "green"
    assert render.age_style(3601) == "yellow"
    assert render.age_style(4 * 3600 + 1) == "red"


def test_tokens_and_progress() -> None:
    assert render.tokens(12450) == "12,450"
    assert render.progress_bar(0.0) == "········"
    assert render.progress_bar(1.0) == "████████"
    assert render.progress_bar(0.5) == "████····"
    assert len(render.progress_bar(0.33)) == 8


def test_walked_chain_follows_complexity() -> None:
    c1 = run("p", "r1", "g", "executing", complexity=1)
    assert render.walked_chain(c1) == ["brainstorm", "planned", "executing", "done"]
    assert render.progress(c1) == 2 / 3
    c2 = run("p", "r2", "g", "review", complexity=2)
    assert render.walked_chain(c2)[-2:] == ["review", "done"]
    # a complexity-1 run sitting on a phase outside its subset (force_full) walks the whole chain
    forced = run("p", "r3", "g", "polish", complexity=1)
    assert len(render.walked_chain(forced)) == 9


def test_clean_shows_escapes_and_controls_inert_and_keeps_brackets() -> None:
    hostile = "[red]x[/red]\x1b[31m red\x1b[0m\x1b]0;title\x07 \x00nul\ttab\nline\u202eRTL"
    assert clean(hostile) == "[red]x[/red]\\x1b[31m red\\x1b[0m\\x1b]0;title\\x07 \\x00nul tab line\\u202eRTL"
    text = literal("[bold]b[/bold]")
    assert text.plain == "[bold]b[/bold]"
    assert text.spans == []
    assert clean(None) == ""


def test_filter_grammar() -> None:
    query = parse_filter("status=blocked phase=REVIEW project=inter Fix foo=bar")
    assert query.terms == {"status": "blocked", "phase": "review", "project": "inter"}
    assert query.words == ("fix", "foo=bar")
    assert parse_filter("  ").empty
    blocked = run("p", "k1", "Fix the bug", "review", unified=UnifiedStatus.BLOCKED)
    assert parse_filter("status=block").matches_run(blocked, "interverse")
    assert parse_filter("status=blocked phase=rev project=inter fix").matches_run(blocked, "interverse")
    assert not parse_filter("status=active").matches_run(blocked, "interverse")
    assert not parse_filter("project=atlas").matches_run(blocked, "interverse")
    assert not parse_filter("login").matches_run(blocked, "interverse")
    cancelled = run("p", "c1", "g", "planned", status="cancelled")
    assert parse_filter("status=cancelled").matches_run(cancelled, "x")
    assert parse_filter("status=error").matches_run(cancelled, "x")


def test_selectors_select_and_order_runs() -> None:
    state = build_state()
    interverse = next(p for p in state.projects if p.name == "interverse")
    assert [r.id for r in project_runs(interverse, NOW, show_all=False)] == [
        "k3v9qa1m",
        "p0x7c2de",
        "z8m1r5tt",
    ]
    assert len(project_runs(interverse, NOW, show_all=True)) == 4
    ranks = [r.unified for _, r in dashboard_runs(state, NOW)]
    assert ranks[:2] == [UnifiedStatus.BLOCKED, UnifiedStatus.ERROR]
    # the atlas failure is an hour old plus one second later: it leaves the dashboard
    assert "f4il3d00" not in [r.id for _, r in dashboard_runs(state, NOW + 1801)]


def test_portfolio_copies_of_child_runs_stay_off_the_dashboard() -> None:
    """A child run shows once, in its own project, not again as the portfolio database's copy."""
    state = build_state()
    child = next(r for _, r in dashboard_runs(state, NOW))
    workspace = project("workspace", [replace(child, parent_run_id="p4rent00")], [], [])
    workspace = replace(workspace, portfolio=True)
    with_copy = replace(state, projects=[*state.projects, workspace])
    listed = [(p.name, r.id) for p, r in dashboard_runs(with_copy, NOW)]
    assert ("workspace", child.id) not in listed
    assert len(listed) == len(dashboard_runs(state, NOW))
    # the same run in an ordinary project (not a portfolio database) is listed
    ordinary = replace(workspace, portfolio=False)
    plain = replace(state, projects=[*state.projects, ordinary])
    assert ("workspace", child.id) in [(p.name, r.id) for p, r in dashboard_runs(plain, NOW)]


def test_compact_tokens_fit_five_characters() -> None:
    cases = {0: "0", 950: "950", 9_499: "9.5k", 12_450: "12k", 729_154: "729k", 999_499: "999k",
             999_500: "1.0M", 1_234_567: "1.2M"}  # fmt: skip
    for value, text in cases.items():
        assert render.tokens_compact(value) == text
        assert len(text) <= 5


def test_source_filter_names_the_line_prefix_family_or_the_raw_source() -> None:
    phase = event("atlas", 1, "r1", "phase", "advance", 0)
    tmux = event("atlas", 2, None, "tmux", "session.attached", 0)
    chat = event("atlas", 3, None, "messaging", "mention", 0)
    kernel = parse_filter("source=kernel")
    assert kernel.matches_event(phase, "atlas")
    assert not kernel.matches_event(tmux, "atlas") and not kernel.matches_event(chat, "atlas")
    assert parse_filter("source=tmux").matches_event(tmux, "atlas")
    assert parse_filter("source=mess").matches_event(chat, "atlas")
    assert parse_filter("source=phase").matches_event(phase, "atlas")
    assert not parse_filter("source=dispatch").matches_event(phase, "atlas")


def test_a_key_with_no_value_yet_filters_nothing() -> None:
    """`t` opens the bar with `type=`: until a value is typed, nothing may disappear."""
    query = parse_filter("type=")
    assert query.empty
    assert query.matches_event(event("atlas", 1, "r1", "phase", "advance", 0), "atlas")
    assert parse_filter("status=blocked type=").terms == {"status": "blocked"}


def test_attention_reason_says_why_a_run_needs_the_operator() -> None:
    state = build_state()
    by_name = {p.name: p for p in state.projects}
    interverse, atlas = by_name["interverse"], by_name["atlas"]
    blocked = find_run(interverse, "k3v9qa1m")
    failed = find_run(atlas, "f4il3d00")
    live = find_run(interverse, "p0x7c2de")
    assert blocked is not None and failed is not None and live is not None
    assert attention_reason(interverse, blocked) == "gate: review needs a passing verdict"
    assert attention_reason(atlas, failed) == "failed: dispatch e9f8g7h6 exited 1"
    assert attention_reason(interverse, live) is None
    silent = run("atlas", "c4nc3l00", "g", "planned", status="cancelled")
    assert attention_reason(atlas, silent) == "cancelled"


def test_sidebar_badge_counts_the_database_and_portfolios() -> None:
    state = with_portfolio(build_state())
    by_name = {p.name: p for p in state.projects}
    interverse = replace(by_name["interverse"], runs_total=240)
    assert render.badge(interverse).plain == "[240 runs] ■1"  # more runs in the database than loaded
    assert render.badge(by_name["legacy-tools"]).plain == "[0 runs] !"
    # the workspace: one parent (its two copies are counted, and blocked, in their own projects)
    assert render.badge(by_name["workspace"]).plain == "[1 portfolio]"
    assert render.badge(by_name["harbor"]).plain == "[2 runs] ■1"


def test_portfolio_parent_first_then_its_children() -> None:
    state = with_portfolio(build_state())
    workspace = next(p for p in state.projects if p.portfolio)
    listed = [r.id for r in project_runs(workspace, NOW, show_all=False)]
    assert listed == ["p0rtf0l1", "c1atlas0", "c2harbr0"]
    assert child_projects(state, workspace) == {"c1atlas0": "atlas", "c2harbr0": "harbor"}
    # children in the order of their project names (the parent's detail lists them so), not their ids
    renamed = {"c1atlas0": "zeta", "c2harbr0": "alpha"}
    by_name = [r.id for r in project_runs(workspace, NOW, False, renamed)]
    assert by_name == ["p0rtf0l1", "c2harbr0", "c1atlas0"]
    assert portfolio_children(workspace) == {"p0rtf0l1": 2}
    parent = find_run(workspace, "p0rtf0l1")
    members = portfolio_members(state, workspace, parent)
    # the child projects' own rows, not the portfolio's copies (the atlas copy lags at `planned`)
    assert [(name, r.phase) for name, r in members] == [("atlas", "executing"), ("harbor", "strategized")]
    assert portfolio_members(state, workspace, find_run(workspace, "c1atlas0")) == []

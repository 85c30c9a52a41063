"""The pure helpers behind the widgets: formatting, filters, untrusted text, view selection."""

from __future__ import annotations

from bigend.core.status import UnifiedStatus
from bigend.ui import format as fmt
from bigend.ui.filtering import parse_filter
from bigend.ui.text import clean, literal
from bigend.ui.views import dashboard_runs, project_runs
from tests.snapshots.fixture_state import NOW, build_state, project, run


def test_durations_fit_six_cells() -> None:
    cases = {0: "0s", 59: "59s", 60: "1m", 3599: "59m", 3600: "1h00m", 5 * 3600 + 7 * 60: "5h07m",
             86400 * 3 + 3600 * 4: "3d04h", 86400 * 150: "150d", -5: "0s"}  # fmt: skip
    for seconds, text in cases.items():
        assert fmt.duration(seconds) == text
        assert len(text) <= 6


def test_age_colours() -> None:
    assert fmt.age_style(3600) == "green"
    assert fmt.age_style(3601) == "yellow"
    assert fmt.age_style(4 * 3600 + 1) == "red"


def test_tokens_and_progress() -> None:
    assert fmt.tokens(12450) == "12,450"
    assert fmt.progress_bar(0.0) == "········"
    assert fmt.progress_bar(1.0) == "████████"
    assert fmt.progress_bar(0.5) == "████····"
    assert len(fmt.progress_bar(0.33)) == 8


def test_walked_chain_follows_complexity() -> None:
    c1 = run("p", "r1", "g", "executing", complexity=1)
    assert fmt.walked_chain(c1) == ["brainstorm", "planned", "executing", "done"]
    assert fmt.progress(c1) == 2 / 3
    c2 = run("p", "r2", "g", "review", complexity=2)
    assert fmt.walked_chain(c2)[-2:] == ["review", "done"]
    # a complexity-1 run sitting on a phase outside its subset (force_full) walks the whole chain
    forced = run("p", "r3", "g", "polish", complexity=1)
    assert len(fmt.walked_chain(forced)) == 9


def test_clean_strips_escapes_and_controls_but_keeps_brackets() -> None:
    hostile = "[red]x[/red]\x1b[31m red\x1b[0m\x1b]0;title\x07 \x00nul\ttab\nline\u202eRTL"
    assert clean(hostile) == "[red]x[/red] red nul tab line RTL"
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


def test_views_select_and_order_runs() -> None:
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
    workspace = project("workspace", [child.model_copy(update={"parent_run_id": "p4rent00"})], [], [])
    workspace = workspace.model_copy(update={"portfolio": True})
    with_copy = state.model_copy(update={"projects": [*state.projects, workspace]})
    listed = [(p.name, r.id) for p, r in dashboard_runs(with_copy, NOW)]
    assert ("workspace", child.id) not in listed
    assert len(listed) == len(dashboard_runs(state, NOW))
    # the same run in an ordinary project (not a portfolio database) is listed
    ordinary = workspace.model_copy(update={"portfolio": False})
    plain = state.model_copy(update={"projects": [*state.projects, ordinary]})
    assert ("workspace", child.id) in [(p.name, r.id) for p, r in dashboard_runs(plain, NOW)]

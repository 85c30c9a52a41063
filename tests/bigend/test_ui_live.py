"""Live: real kernel databases in a temp workspace, the real Aggregator, real `ic` writes.

No key is pressed between a write and the check: the app must pick the change up from the core's
notifications, keep the cursor on the run it was on, and show hostile text literally.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.ui.app import BigendApp
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.run_list import RunList
from kernel import db as kdb
from tests.conftest import IcResult, Project
from tests.snapshots.pilot_helpers import screen_text, settle, wait_for

SIZE = (120, 40)


def make_project(root: Path, name: str) -> Project:
    project = Project(root / name)
    project.dir.mkdir(parents=True)
    kdb.init_db(project.db)
    return project


async def ic(project: Project, *args: str) -> IcResult:
    """The real `ic` in a thread, so the app's event loop keeps running while it writes."""
    result = await asyncio.to_thread(project.ic, *args)
    assert result.code == 0, result.err
    return result


def config_for(root: Path) -> BigendConfig:
    return BigendConfig(roots=[root], poll_interval=0.5, rediscover_interval=5.0)


def table_goals(table: ActiveRunsTable) -> list[str]:
    return [table.get_row(row.key)[2].plain for row in table.ordered_rows]


async def test_a_kernel_write_shows_without_a_key_press(tmp_path: Path) -> None:
    alpha = make_project(tmp_path, "alpha")
    await ic(alpha, "run", "create", "--goal=first goal")
    app = BigendApp(aggregator=Aggregator(config_for(tmp_path)))
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ActiveRunsTable)
        await wait_for(pilot, lambda: table_goals(table) == ["first goal"])
        await ic(alpha, "run", "create", "--goal=second goal")
        await wait_for(pilot, lambda: "second goal" in table_goals(table))
        assert "second goal" in screen_text(app)


async def test_cursor_stays_on_its_run_through_live_updates(tmp_path: Path) -> None:
    alpha = make_project(tmp_path, "alpha")
    ids = [(await ic(alpha, "run", "create", f"--goal=run {n}", "--json")).json()["id"] for n in range(3)]
    app = BigendApp(aggregator=Aggregator(config_for(tmp_path)))
    async with app.run_test(size=SIZE) as pilot:
        runs = app.main_screen.query_one(RunList)
        await wait_for(
            pilot, lambda: app.main_screen.state is not None and len(app.main_screen.state.projects) == 1
        )
        assert app.main_screen.state is not None
        app.main_screen.open_project(app.main_screen.state.projects[0].path)
        await wait_for(pilot, lambda: runs.row_count == 3)
        await pilot.press("j")
        chosen = runs.selected_key
        assert chosen is not None and chosen in ids
        # a new run sorts first (newest), which shifts every row down by one
        await ic(alpha, "run", "create", "--goal=newcomer")
        await wait_for(pilot, lambda: runs.row_count == 4)
        assert runs.selected_key == chosen
        # a change to the selected run itself updates its row in place
        await ic(alpha, "run", "advance", chosen, "--disable-gates")
        await wait_for(pilot, lambda: runs.get_row(chosen)[2].plain == "brainstorm-r")
        assert runs.selected_key == chosen
        assert app.focused is runs


async def test_hostile_text_renders_literally(tmp_path: Path) -> None:
    hostile = make_project(tmp_path, "hostile")
    goal = "[red]x[/red] \x1b[31mEVIL\x1b[0m [bold]b \x07bell"
    await ic(hostile, "run", "create", f"--goal={goal}")
    await ic(hostile, "events", "record", "--source=tmux", "--type=note", "--reason=[u]why[/u]\x1b]0;pwn\x07")
    app = BigendApp(aggregator=Aggregator(config_for(tmp_path)))
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ActiveRunsTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await settle(pilot)
        text = screen_text(app)
        shown = "[red]x[/red] \\x1b[31mEVIL\\x1b[0m [bold]b \\x07bell"  # escapes inert, as `ic` prints them
        assert "\x1b" not in text and "\x07" not in text
        cell = table.get_row(table.ordered_rows[0].key)[2]
        assert cell.plain == shown
        assert cell.spans == []  # nothing in the goal became a style
        assert "[T] hostile - note [u]why[/u]\\x1b]0;pwn\\x07" in text  # the title sequence shown, not obeyed


async def test_r_rereads_every_project_now(tmp_path: Path) -> None:
    alpha = make_project(tmp_path, "alpha")
    await ic(alpha, "run", "create", "--goal=only run")
    aggregator = Aggregator(config_for(tmp_path))
    app = BigendApp(aggregator=aggregator)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: app.main_screen.state is not None and len(app.main_screen.state.projects) == 1
        )
        assert app.main_screen.state is not None
        key = app.main_screen.state.projects[0].path
        before = aggregator.read_count(key)
        await pilot.press("r")
        await wait_for(pilot, lambda: aggregator.read_count(key) > before)

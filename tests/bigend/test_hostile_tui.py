"""The TUI over the shared hostile corpus (tests/hostile.py): real project directories whose names
carry escape sequences, goals and event reasons from the corpus, the real aggregator and app.

What reaches the virtual terminal holds no raw control character, the data is shown literally (as
`kernel.terminal` writes it, the same text `ic` prints), and nothing in it became a style.
"""

from __future__ import annotations

from pathlib import Path

from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.ui.app import BigendApp
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from kernel import db as kdb
from kernel import events, runs, terminal
from tests.hostile import SAMPLES, assert_inert, dir_name
from tests.snapshots.pilot_helpers import screen_text, settle, wait_for

SIZE = (200, 60)


def build_workspace(root: Path) -> dict[str, str]:
    """One project per sample, named after it, with a run whose goal is the sample; name -> goal."""
    goals: dict[str, str] = {}
    for name, sample in SAMPLES.items():
        project = root / dir_name(f"{name}{sample}")
        db = project / kdb.DB_DIR / kdb.DB_NAME
        kdb.init_db(db)
        conn = kdb.open_db(db)
        run = runs.create_run(conn, goal=sample, project_dir=project)
        events.record_external(conn, source="tmux", type="note", run_id=run.id, reason=sample)
        conn.close()
        goals[project.name] = sample
    return goals


async def test_hostile_names_goals_and_reasons_render_literally(tmp_path: Path) -> None:
    goals = build_workspace(tmp_path)
    app = BigendApp(aggregator=Aggregator(BigendConfig(roots=[tmp_path], poll_interval=0.5)))
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ActiveRunsTable)
        await wait_for(pilot, lambda: table.row_count == len(SAMPLES))
        await settle(pilot)
        screen = screen_text(app)
        assert_inert(screen)
        shown_goals = {}
        for row in table.ordered_rows:
            cells = table.get_row(row.key)
            goal = cells[2]
            assert all(cell.spans == [] for cell in cells[:4]), "no style may come from data"
            shown_goals[cells[0].plain] = goal.plain
        # Every goal is the inert form `ic` prints; the first characters of each are on screen.
        assert sorted(shown_goals.values()) == sorted(terminal.one_line(goal) for goal in goals.values())
        for goal in goals.values():
            assert terminal.one_line(goal)[:10] in screen
        assert "[bold red]styled[/]" in screen
        assert "\\x1b[31;1mred\\x1b[0m" in screen
        assert "\\x9b2Jeight-bit" in screen
        assert "invoice\\u202efdp.exe" in screen

        sidebar = app.main_screen.query_one(ProjectSidebar)
        names = {sidebar.get_row(row.key)[0].plain for row in sidebar.ordered_rows}
        assert all(terminal.one_line(name)[:16] in " ".join(names) for name in goals)

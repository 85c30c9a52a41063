"""Issue 13, item 7: one runner stack with its state in the kernel.

Kernel calls run on the bridge's one writer thread, never on the event loop; where the loop stands
and what a review concluded are the dispatches' metadata, read back from the kernel on a rerun.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import threading
from pathlib import Path

import pytest

from kernel import db as kdb
from orchestrator.kernel_bridge import KernelBridge
from tests.conftest import hold_lock, release
from tests.orchestrator.conftest import Repo, runner_config
from tests.orchestrator.test_resume import wait_for


async def test_a_kernel_write_waiting_for_the_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    bridge = await KernelBridge.open(tmp_path)
    assert bridge is not None
    threads: set[str] = set()
    await bridge._call(
        "trace", bridge.conn.set_trace_callback, lambda sql: threads.add(threading.current_thread().name)
    )
    holder = hold_lock(tmp_path / kdb.DB_DIR / kdb.DB_NAME, exclusive=False)
    try:
        create = asyncio.create_task(
            bridge.create_run(issue_id="1", title="t", milestone="M", branch="issue/1", token_budget=None)
        )
        await asyncio.sleep(0.3)  # the event loop runs while the write waits for the other process
        assert not create.done()
    finally:
        release(holder)  # released from the event loop: had the write blocked it, this never ran
    run = await create
    assert (run.phase, run.status) == ("queued", "active")
    await bridge.enter(run.id, "dev", reason="dev starts")
    await bridge.close()
    assert threads and all(name.startswith("kernel") for name in threads)
    assert threading.current_thread().name not in threads


@pytest.mark.slow
def test_a_rerun_reads_the_failed_verdict_from_the_kernel_not_from_the_logs(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    failing = {"verdict": {"status": "fail", "findings": [{"message": "tabs still break", "file": "p.py"}]}}
    repo.scenario({"1": {"review": [failing, {}], "fix": [{"stall": 120, "marker": "fixing"}, {}]}})
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    wait_for(repo.state / "fixing")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    shutil.rmtree(repo.dir / ".orchestrator/logs")  # no result.json to read the verdict from
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    fixes = [c for c in repo.calls() if c["phase"] == "fix"]
    assert len(fixes) == 2
    assert "- p.py: tabs still break" in Path(fixes[1]["prompt_file"]).read_text()  # from the kernel

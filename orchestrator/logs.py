"""Where everything an agent said is kept: `<root>/<issue>/cycle-<n>/<phase>/attempt-<k>/`.

Each attempt directory holds `prompt.md`, `raw.log` (the agent's stdout, byte for byte, written as it
arrives), `stderr.log` and `result.json` (what the orchestrator made of it). Attempt numbers keep
growing across reruns, so an interrupted attempt's logs are never overwritten by its redo.
`<root>/summary.json` is the latest run's summary, `<root>/summaries/` keeps every run's.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ATTEMPT = re.compile(r"attempt-(\d+)$")


@dataclass(frozen=True)
class AttemptPaths:
    dir: Path
    attempt: int

    @property
    def prompt(self) -> Path:
        return self.dir / "prompt.md"

    @property
    def raw(self) -> Path:
        return self.dir / "raw.log"

    @property
    def stderr(self) -> Path:
        return self.dir / "stderr.log"

    @property
    def result(self) -> Path:
        return self.dir / "result.json"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class LogLayout:
    def __init__(self, root: Path) -> None:
        self.root = root

    def issue_dir(self, issue_id: str) -> Path:
        return self.root / issue_id

    def new_attempt(self, issue_id: str, cycle: int, phase: str) -> AttemptPaths:
        """Create the next unused attempt directory (mkdir is the claim, so no two runs share one)."""
        phase_dir = self.issue_dir(issue_id) / f"cycle-{cycle}" / phase
        phase_dir.mkdir(parents=True, exist_ok=True)
        used = [int(m.group(1)) for p in phase_dir.iterdir() if (m := _ATTEMPT.match(p.name))]
        number = max(used, default=0) + 1
        while True:
            candidate = phase_dir / f"attempt-{number}"
            try:
                candidate.mkdir()
                return AttemptPaths(candidate, number)
            except FileExistsError:
                number += 1

    @property
    def summary(self) -> Path:
        """The latest run's summary."""
        return self.root / "summary.json"

    def summary_of(self, started_at: float) -> Path:
        """Every run's summary, kept: a later `--issue X` run replaces summary.json, not this."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started_at))
        return self.root / "summaries" / f"{stamp}-{os.getpid()}.json"

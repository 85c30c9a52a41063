"""The JSON edge of the state: the only place pydantic touches the snapshot, and a lossless one."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace

import pytest
from pydantic import ValidationError

from bigend.core.snapshot import Freshness, KernelState
from bigend.core.statejson import state_from_json, state_json
from bigend.core.status import UnifiedStatus
from tests.snapshots.fixture_state import build_state


def test_the_state_round_trips_through_its_json_document() -> None:
    state = build_state()
    project = replace(state.projects[0], freshness=Freshness.GONE, gone_since=1.5, error="gone")
    state = replace(state, projects=[project, *state.projects[1:]])

    text = state_json(state)

    assert "\n" not in text and text == json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True,
                                                   ensure_ascii=False)  # fmt: skip
    back = state_from_json(text)
    assert back == state
    assert back.projects[0].freshness is Freshness.GONE
    assert all(isinstance(r.unified, UnifiedStatus) for p in back.projects for r in p.runs)


def test_reading_back_validates() -> None:
    document = json.loads(state_json(build_state()))
    document["projects"][0]["freshness"] = "mostly fresh"
    with pytest.raises(ValidationError):
        state_from_json(json.dumps(document))


def test_snapshot_objects_are_frozen() -> None:
    state = build_state()
    with pytest.raises(FrozenInstanceError):
        state.projects[0].name = "renamed"  # type: ignore[misc]
    assert isinstance(state, KernelState) and not hasattr(state, "__dict__")  # slotted


def test_the_core_builds_snapshots_without_pydantic() -> None:
    script = (
        "import sys\n"
        "import bigend.core.reader, bigend.core.snapshot, kernel.readmodel\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

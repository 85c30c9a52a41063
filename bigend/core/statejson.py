"""The JSON edge of Bigend's state: `bigend --once --json`, its JSON Schema, and reading it back.

The in-memory KernelState is plain dataclasses (snapshot.py); this is the one place that turns it into
JSON and back, through pydantic's TypeAdapter over those same classes, so the document, the schema in
docs/contracts/bigend-state.schema.json (scripts/gen_contracts.py) and the objects cannot disagree.
Loading validates types and enums; dumping trusts the objects (the aggregator built them from rows).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from bigend.core.snapshot import KernelState


@cache
def _adapter() -> TypeAdapter[KernelState]:
    return TypeAdapter(KernelState)


def state_document(state: KernelState) -> dict[str, Any]:
    """The state as JSON-ready Python values (enums as their values)."""
    document: dict[str, Any] = _adapter().dump_python(state, mode="json")
    return document


def state_json(state: KernelState) -> str:
    """The one JSON encoding of the state: compact, sorted keys, non-ASCII kept (like `ic --json`)."""
    return json.dumps(state_document(state), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def state_from_json(text: str | bytes) -> KernelState:
    """A KernelState read back from `state_json` output, validated (pydantic.ValidationError if not)."""
    return _adapter().validate_json(text)


def state_schema() -> dict[str, Any]:
    """The JSON Schema of the document (scripts/gen_contracts.py adds `$schema`, `$id` and closes objects)."""
    schema: dict[str, Any] = _adapter().json_schema()
    return schema

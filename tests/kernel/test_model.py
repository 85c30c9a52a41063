"""Row types keep the behaviour of stock frozen, slotted dataclasses (kernel.model writes some of it
by hand to start faster): compared here against a stock dataclass with the same fields."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from kernel import model

ROW_TYPES = [cls for cls in vars(model).values() if isinstance(cls, type) and dataclasses.is_dataclass(cls)]
RUN_ROW = ("r1", "/p", "goal", "active", "a", 3, 1, 0, None, '{"k":[1]}', '["a","b"]', None, 80, 0, None,
           None, None, None, 1, 2, None)  # fmt: skip


def stock_twin(cls: type) -> type:
    """A stock `@dataclass(frozen=True, slots=True)` with the same fields."""
    return dataclasses.make_dataclass(
        cls.__name__, [(f.name, f.type) for f in dataclasses.fields(cls)], frozen=True, slots=True
    )


def sample(cls: type, salt: int = 0) -> Any:
    values = [f"{f.name}-{salt}" if "str" in str(f.type) else salt for f in dataclasses.fields(cls)]
    return cls(*values)


def test_every_row_type_is_a_frozen_slotted_dataclass() -> None:
    assert {c.__name__ for c in ROW_TYPES} >= {"Run", "Event", "Dispatch", "RunAgent", "RunArtifact"}
    for cls in ROW_TYPES:
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen and "__slots__" in vars(cls), cls


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_equality_hash_and_repr_are_those_of_a_stock_dataclass(cls: type) -> None:
    twin = stock_twin(cls)
    a, b, other = sample(cls), sample(cls), sample(cls, salt=1)
    ta, tother = sample(twin), sample(twin, salt=1)
    assert a == b and (a != b) is False and a is not b
    assert (a == other) is (ta == tother) is False
    assert a != ta, "a different class is never equal, whatever its fields"
    assert hash(a) == hash(b) == hash(ta)
    assert repr(a) == repr(ta) and repr(other) == repr(tother)
    assert dataclasses.asdict(a) == a.to_json() == dataclasses.asdict(ta)


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_instances_stay_frozen_and_copyable(cls: type) -> None:
    row = sample(cls)
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(row, name, "changed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(row, name)
    with pytest.raises((AttributeError, TypeError)):
        row.not_a_field = 1
    assert dataclasses.replace(row) == row == pickle.loads(pickle.dumps(row)) == copy.deepcopy(row)
    assert dataclasses.replace(row, **{name: "x"}) != row


def test_from_row_decodes_json_columns_and_to_json_copies_them() -> None:
    run = model.Run.from_row(RUN_ROW)
    assert (run.phases, run.metadata) == (["a", "b"], {"k": [1]})
    assert (run.force_full, run.auto_advance) == (True, False)
    body = run.to_json()
    body["metadata"]["k"].append(2)
    assert run.metadata == {"k": [1]}, "to_json hands out copies, never the frozen row's own lists"
    assert model.RunAgent.from_row(("a", "r", "n", None, "active", None, 1, 2)).name == "n"
    with pytest.raises(TypeError):
        hash(run)  # a list field makes it unhashable, as with a stock dataclass

"""Row types keep the behaviour of stock frozen, slotted dataclasses (kernel.model writes it by hand,
once, in `RowType`, to start faster): every row type is compared here with a stock
`@dataclass(frozen=True, slots=True)` of the same fields."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import typing
from typing import Any

import pytest

from kernel import model
from kernel.portfolio import contracts as portfolio_contracts
from kernel.portfolio import rows as portfolio_rows

ROW_TYPES = [
    cls
    for module in (model, portfolio_rows, portfolio_contracts)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, model.RowType) and cls is not model.RowType
]
RUN_ROW = ("r1", "/p", "goal", "active", "a", 3, 1, 0, None, '{"k":[1]}', '["a","b"]', None, 80, 0, None,
           None, None, None, 1, 2, None)  # fmt: skip


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, localns=vars(typing))


def stock_twin(cls: type[model.RowType]) -> type:
    """A stock `@dataclass(frozen=True, slots=True)` with the same fields."""
    return dataclasses.make_dataclass(
        cls.__name__, [(name, hints(cls)[name]) for name in cls.FIELDS], frozen=True, slots=True
    )


def sample(cls: type, salt: int = 0) -> Any:
    names = cls.FIELDS if issubclass(cls, model.RowType) else [f.name for f in dataclasses.fields(cls)]
    kinds = hints(cls)
    return cls(*(f"{name}-{salt}" if "str" in str(kinds[name]) else salt for name in names))


def test_every_row_type_is_covered_and_slotted() -> None:
    names = {c.__name__ for c in ROW_TYPES}
    assert names >= {
        "Run",
        "Event",
        "Dispatch",
        "RunAgent",
        "RunArtifact",
        "ChildStatus",
        "PortfolioRunStatus",
    }
    for cls in ROW_TYPES:
        assert "__slots__" in vars(cls), cls
        assert tuple(f.name for f in dataclasses.fields(stock_twin(cls))) == cls.FIELDS
        with pytest.raises(AttributeError):
            sample(cls).__dict__  # noqa: B018 - slotted: no instance dict


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_equality_hash_repr_and_json_are_those_of_a_stock_dataclass(cls: type) -> None:
    twin = stock_twin(cls)
    a, b, other = sample(cls), sample(cls), sample(cls, salt=1)
    ta, tother = sample(twin), sample(twin, salt=1)
    assert a == b and (a != b) is False and a is not b
    assert (a == other) is (ta == tother) is False
    assert a != ta, "a different class is never equal, whatever its fields"
    assert hash(a) == hash(b) == hash(ta)
    assert repr(a) == repr(ta) and repr(other) == repr(tother)
    assert a.to_json() == dataclasses.asdict(ta)
    assert a.__match_args__ == ta.__match_args__  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_instances_stay_frozen_and_copyable(cls: type) -> None:
    row = sample(cls)
    name = cls.FIELDS[0]
    with pytest.raises(AttributeError, match=f"cannot assign to field '{name}'"):
        setattr(row, name, "changed")
    with pytest.raises(model.FrozenRowError):
        delattr(row, name)
    with pytest.raises((AttributeError, TypeError)):
        row.not_a_field = 1
    assert row == pickle.loads(pickle.dumps(row)) == copy.deepcopy(row) == copy.copy(row)


@pytest.mark.parametrize("cls", ROW_TYPES, ids=lambda c: c.__name__)
def test_construction_is_checked_like_a_dataclass(cls: type) -> None:
    values = sample(cls)._values()
    by_name = dict(zip(cls.FIELDS, values, strict=True))
    assert cls(**by_name) == cls(*values) == cls(values[0], **dict(list(by_name.items())[1:]))
    with pytest.raises(TypeError, match="missing field"):
        cls(*values[:-1])
    with pytest.raises(TypeError, match="positional"):
        cls(*values, "extra")
    with pytest.raises(TypeError, match="unknown or repeated"):
        cls(*values, **{cls.FIELDS[0]: "again"})
    with pytest.raises(TypeError, match="unknown or repeated"):
        cls(**by_name, nope=1)


def test_from_row_decodes_json_columns_and_to_json_copies_them() -> None:
    run = model.Run.from_row(RUN_ROW)
    assert (run.phases, run.metadata) == (["a", "b"], {"k": [1]})
    assert (run.force_full, run.auto_advance) == (True, False)
    body = run.to_json()
    body["metadata"]["k"].append(2)
    assert run.metadata == {"k": [1]}, "to_json hands out copies, never the frozen row's own lists"
    assert model.RunAgent.from_row(("a", "r", "n", None, "active", None, 1, 2)).name == "n"
    with pytest.raises(ValueError):
        model.RunAgent.from_row(("a", "r"))  # a row of the wrong width is an error, not a short row
    with pytest.raises(TypeError):
        hash(run)  # a list field makes it unhashable, as with a stock dataclass


def test_nested_rows_become_json_objects() -> None:
    child = sample(portfolio_rows.ChildStatus)
    parent = model.Run.from_row(RUN_ROW)
    status = portfolio_contracts.PortfolioRunStatus.of(parent, [child])
    body = status.to_json()
    assert body["children"] == [child.to_json()] and body["id"] == "r1"
    assert body == {**parent.to_json(), "children": [dataclasses.asdict(sample(stock_twin(type(child))))]}

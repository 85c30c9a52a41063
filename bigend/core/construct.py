"""Build snapshot models from trusted kernel rows without validation.

A full refresh builds tens of thousands of RunInfo/DispatchInfo objects; pydantic validation costs
about 2 us per object and `model_construct` about 6 us (it walks every field's defaults and aliases),
which alone would eat the 150 ms budget of DESIGN 6. Rows coming out of a kernel database already have
the schema's types, so here the instance dictionary is set directly (about 0.4 us). Callers must pass
every field of the model; `tests/bigend/test_core_construct.py` checks the result equals a validated one.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# BaseModel keeps its state in four slots; setting them through the slot descriptors directly is about
# three times cheaper than object.__setattr__ by name.
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__
_FIELD_SETS: dict[type[BaseModel], set[str]] = {}


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """An instance of `model` holding `values` as is: no validation, no defaults filled in."""
    fields_set = _FIELD_SETS.get(model)
    if fields_set is None:
        fields_set = _FIELD_SETS[model] = set(model.model_fields)
    obj = model.__new__(model)
    _set_dict(obj, values)
    _set_fields(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj

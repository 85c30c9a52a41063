"""The dependency graph functions behind `ic portfolio dep add` and `ic portfolio order`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.portfolio.order import CycleError, cycle_if_added, format_cycle, topological_order

NAMES = st.sampled_from(["/p/a", "/p/b", "/p/c", "/p/d", "/p/e", "/p/f"])


def _acyclic(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    kept: list[tuple[str, str]] = []
    for up, down in edges:
        if up != down and (up, down) not in kept and cycle_if_added(kept, up, down) is None:
            kept.append((up, down))
    return kept


@given(st.lists(st.tuples(NAMES, NAMES), max_size=15))
def test_order_respects_every_edge_and_is_deterministic(raw: list[tuple[str, str]]) -> None:
    edges = _acyclic(raw)
    projects = ["/p/a", "/p/b", "/p/c", "/p/d", "/p/e", "/p/f"]
    order = topological_order(projects, edges)
    assert sorted(order) == projects
    assert all(order.index(up) < order.index(down) for up, down in edges)
    assert topological_order(reversed(projects), list(reversed(edges))) == order  # input order is irrelevant


def test_smallest_ready_first_and_cycles_named() -> None:
    assert topological_order(["/z", "/y", "/x"], [("/z", "/x")]) == ["/y", "/z", "/x"]
    edges = [("/a", "/b"), ("/b", "/c")]
    cycle = cycle_if_added(edges, "/c", "/a")
    assert cycle is not None and format_cycle(cycle) == "/c -> /a -> /b -> /c"
    assert cycle_if_added(edges, "/a", "/c") is None  # a shortcut, not a cycle
    with pytest.raises(CycleError, match="/a, /b") as info:
        topological_order(["/a", "/b"], [("/a", "/b"), ("/b", "/a")])
    assert info.value.exit_code == 2

"""Dependency graphs between projects: cycle detection and a stable topological order.

Pure functions over project paths and (upstream, downstream) edges, so the CLI, the gates and Bigend
all order projects the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from kernel.errors import KernelError

Edge = tuple[str, str]


class CycleError(KernelError):
    """A dependency that would make the projects wait on each other forever (exit 2, DESIGN 3.2)."""

    exit_code = 2


def _successors(edges: Iterable[Edge]) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {}
    for upstream, downstream in edges:
        succ.setdefault(upstream, []).append(downstream)
    for targets in succ.values():
        targets.sort()
    return succ


def path_between(edges: Iterable[Edge], start: str, goal: str) -> list[str] | None:
    """A dependency path start -> ... -> goal (depth-first, smallest names first), or None."""
    succ = _successors(edges)
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        if node in seen:
            continue
        seen.add(node)
        for nxt in reversed(succ.get(node, [])):
            if nxt not in seen:
                stack.append((nxt, [*path, nxt]))
    return None


def cycle_if_added(edges: Iterable[Edge], upstream: str, downstream: str) -> list[str] | None:
    """The cycle that the edge upstream -> downstream would close, as a closed path, or None."""
    back = path_between(edges, downstream, upstream)
    return None if back is None else [upstream, *back]


def topological_order(projects: Iterable[str], edges: Iterable[Edge]) -> list[str]:
    """Kahn's algorithm taking the lexicographically smallest ready project first (stable, unique).

    Raises CycleError naming the projects left over if the graph is not acyclic (deps refuse cycles,
    so this only happens if the table was edited by hand).
    """
    nodes = set(projects)
    edge_list = [(u, d) for u, d in edges]
    for u, d in edge_list:
        nodes.update((u, d))
    indegree = dict.fromkeys(nodes, 0)
    for _, d in edge_list:
        indegree[d] += 1
    succ = _successors(edge_list)
    ready = [n for n, deg in indegree.items() if deg == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for nxt in succ.get(node, []):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, nxt)
    if len(order) != len(nodes):
        stuck = sorted(n for n in nodes if n not in set(order))
        raise CycleError(f"the dependencies form a cycle among: {', '.join(stuck)}")
    return order


def format_cycle(cycle: list[str]) -> str:
    return " -> ".join(cycle)

"""The order issues run in: dependencies first, and among the ready ones the smallest id.

The order is a pure function of the issue set (natural id order breaks every tie), so a rerun plans
exactly the same sequence. A cycle is reported with every issue on it, not just "cycle detected".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import CycleError
from orchestrator.issues import Issue, natural_key


@dataclass(frozen=True)
class PlanEntry:
    issue: Issue
    waits_for: tuple[str, ...]  # dependencies inside the plan: they must pass first
    external: tuple[str, ...]  # dependencies outside the selection: not waited for, only shown


def _cycle_members(nodes: Iterable[str], edges: dict[str, list[str]]) -> list[str]:
    """Issues on a cycle among `nodes` (Tarjan's strongly connected components, size > 1 or self-loop)."""
    nodes = list(nodes)
    allowed = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    members: set[str] = set()
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        work: list[tuple[str, int]] = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, i = work[-1]
            targets = [t for t in edges.get(node, []) if t in allowed]
            if i < len(targets):
                work[-1] = (node, i + 1)
                target = targets[i]
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    members.update(component)

    for node in nodes:
        if node not in index:
            visit(node)
    return sorted(members, key=natural_key)


def plan(issues: list[Issue], *, order: str = "dag") -> list[PlanEntry]:
    """Issues in run order. `order="linear"` ignores dependencies for ordering (natural id order)."""
    by_id = {issue.id: issue for issue in issues}
    waits = {i.id: tuple(d for d in i.depends_on if d in by_id) for i in issues}
    external = {i.id: tuple(d for d in i.depends_on if d not in by_id) for i in issues}
    if order == "linear":
        ordered = sorted(issues, key=lambda i: natural_key(i.id))
        return [PlanEntry(i, (), external[i.id] + waits[i.id]) for i in ordered]
    dependents: dict[str, list[str]] = {i.id: [] for i in issues}
    pending = {i.id: len(set(waits[i.id])) for i in issues}
    for issue in issues:
        for dep in set(waits[issue.id]):
            dependents[dep].append(issue.id)
    ready = [(natural_key(i), i) for i, n in pending.items() if n == 0]
    heapq.heapify(ready)
    ordered_ids: list[str] = []
    while ready:
        _, current = heapq.heappop(ready)
        ordered_ids.append(current)
        for child in dependents[current]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(ready, (natural_key(child), child))
    if len(ordered_ids) < len(issues):
        stuck = [i.id for i in issues if i.id not in set(ordered_ids)]
        edges = {i: list(waits[i]) for i in stuck}
        raise CycleError(_cycle_members(stuck, edges) or sorted(stuck, key=natural_key))
    return [PlanEntry(by_id[i], waits[i], external[i]) for i in ordered_ids]


def dependency_rank(issues: list[Issue]) -> dict[str, int]:
    """Every issue's position in dependency order (for merging dependency branches in that order);
    natural id order when the whole set has a cycle (the selected issues were checked on their own)."""
    try:
        ordered = [entry.issue.id for entry in plan(issues)]
    except CycleError:
        ordered = sorted((i.id for i in issues), key=natural_key)
    return {issue_id: rank for rank, issue_id in enumerate(ordered)}

"""Batch validation and group planning shared by the backends (pure, no I/O).

``plan_group`` replays a group of batches in order against the state before the group,
decides which batches fail with ``KeyExists`` (an ``Insert`` found its key present, counting
the accepted batches before it), and folds the accepted ones into the final state per key.
A backend then writes that final state in a few bulk statements instead of one per op.
``prefix_within`` cuts a queue into groups (or frames, or pages) by size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from store.api import Delete, Insert, Op, Put
from store.errors import KeyExists

__all__ = ["check_ops", "check_scan", "GroupPlan", "plan_group", "prefix_within"]


def prefix_within(sizes: Iterable[int], limit: int) -> int:
    """How many leading items fit in ``limit`` together: at least one, so that an item
    larger than the limit still goes, alone."""
    total = taken = 0
    for size in sizes:
        total += size
        if total > limit and taken:
            break
        taken += 1
    return taken


def check_ops(ops: Sequence[Op]) -> tuple[Op, ...]:
    """``ops`` as a tuple, after checking types (local misuse raises TypeError)."""
    checked = tuple(ops)
    for op in checked:
        kind = type(op)
        if kind is Delete:
            if type(op.key) is not bytes:
                raise TypeError("Delete.key must be bytes")
        elif kind is Put or kind is Insert:
            if type(op.key) is not bytes or type(op.value) is not bytes:  # type: ignore[union-attr]
                raise TypeError(f"{kind.__name__}.key and .value must be bytes")
        else:
            raise TypeError(f"not a store op: {op!r}")
    return checked


def check_scan(start: bytes, end: bytes, limit: int) -> bool:
    """Validate scan arguments; False when the scan is trivially empty."""
    if type(start) is not bytes or type(end) is not bytes:
        raise TypeError("scan bounds must be bytes")
    if limit < 0:
        raise ValueError("scan limit must be >= 0")
    return limit > 0 and start < end


@dataclass(slots=True)
class GroupPlan:
    """The outcome of replaying a group of batches."""

    #: per batch: None (accepted) or the KeyExists it fails with
    outcomes: list[KeyExists | None] = field(default_factory=list)
    #: final state of every key an accepted batch touched (None: deleted)
    final: dict[bytes, bytes | None] = field(default_factory=dict)
    #: keys absent before the group that an accepted Insert wrote, with its (first) value;
    #: a backend shared with other writers inserts these without ON CONFLICT to catch races
    fresh_inserts: dict[bytes, bytes] = field(default_factory=dict)

    def upserts(self) -> dict[bytes, bytes]:
        """Final values still to write after ``fresh_inserts`` (skips unchanged inserts)."""
        fresh = self.fresh_inserts
        return {k: v for k, v in self.final.items() if v is not None and not (k in fresh and fresh[k] is v)}

    def deletes(self) -> list[bytes]:
        """Keys whose final state is absent."""
        return [k for k, v in self.final.items() if v is None]


def plan_group(batches: Sequence[Sequence[Op]], exists: Callable[[bytes], bool]) -> GroupPlan:
    """Replay ``batches`` in order; ``exists`` answers for the state before the group."""
    plan = GroupPlan()
    for ops in batches:
        outcome = _first_conflict(ops, plan.final, exists)
        plan.outcomes.append(outcome)
        if outcome is None:
            _accept(ops, plan, exists)
    return plan


def _present(
    key: bytes,
    staged: dict[bytes, bytes | None],
    final: dict[bytes, bytes | None],
    exists: Callable[[bytes], bool],
) -> bool:
    if key in staged:
        return staged[key] is not None
    if key in final:
        return final[key] is not None
    return exists(key)


def _first_conflict(
    ops: Sequence[Op], final: dict[bytes, bytes | None], exists: Callable[[bytes], bool]
) -> KeyExists | None:
    staged: dict[bytes, bytes | None] = {}
    for op in ops:
        if type(op) is Insert and _present(op.key, staged, final, exists):
            return KeyExists(op.key)
        staged[op.key] = None if type(op) is Delete else op.value  # type: ignore[union-attr]
    return None


def _accept(ops: Sequence[Op], plan: GroupPlan, exists: Callable[[bytes], bool]) -> None:
    for op in ops:
        if type(op) is Delete:
            plan.final[op.key] = None
            continue
        value: bytes = op.value  # type: ignore[union-attr]
        if type(op) is Insert and op.key not in plan.fresh_inserts and not exists(op.key):
            plan.fresh_inserts[op.key] = value
        plan.final[op.key] = value

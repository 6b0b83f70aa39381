"""``RecentMap``: the newest entries of an unbounded stream, bounded, without long pauses.

The messenger remembers every recent send (idempotent retries, ``im/messaging.py``) and the
parties of every recent message (delivery acks), one insert per message each. An
``OrderedDict`` that forgets its oldest entry past a limit of 200,000 pauses now and then:
the deleted slots pile up in the dict under it until it compacts (about once per 500,000
inserts when full; growth resizes come on the way there), and each resize also rebuilds
the ``OrderedDict``'s own node index, all in one call. Measured on the reference box:
17-23 ms for that one insert in a bare loop, and 50-100 ms in a loaded node (the new tables
are fresh pages the kernel zeroes), during which the event loop serves nobody; these pauses
made the benchmark's worst paced p99s (100-230 ms).

``RecentMap`` keeps ``GENERATIONS`` plain dicts of ``limit // GENERATIONS`` entries each.
Inserts go to the newest; when it is full it becomes the first of the older ones and the
oldest is dropped whole. Nothing is deleted from a dict, so none compacts; what is left is
the growth of the newest dict and the release of the oldest, each about 1/``GENERATIONS``
of the whole: measured at 200,000, 2 ms for message ids with tuple values and 3-4 ms for
(user, client message id) keys, whose release frees ~250,000 objects. The map holds at most
``limit`` entries, and the newest ``(GENERATIONS - 1) * (limit // GENERATIONS)`` keys are
always among them (150,000 of a limit of 200,000; the ``OrderedDict`` held exactly
``limit``). Values must not be None: ``get`` returns None for a missing key.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["GENERATIONS", "RecentMap"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

GENERATIONS = 4


class RecentMap(Generic[K, V]):
    """At most ``limit`` entries, always the newest ``(generations - 1) * (limit // generations)``."""

    __slots__ = ("limit", "_per_generation", "_keep", "_newest", "_older")

    def __init__(self, limit: int, generations: int = GENERATIONS) -> None:
        if generations < 2 or limit < generations:
            raise ValueError("generations must be >= 2 and limit >= generations")
        self.limit = limit
        self._per_generation = limit // generations
        self._keep = generations - 1
        self._newest: dict[K, V] = {}
        self._older: tuple[dict[K, V], ...] = ()  # newest first

    def remember(self, key: K, value: V) -> None:
        """Set ``key`` (in the newest generation, where it shadows an older value)."""
        newest = self._newest
        newest[key] = value
        if len(newest) >= self._per_generation:
            self._older = (newest, *self._older[: self._keep - 1])
            self._newest = {}

    def get(self, key: K) -> V | None:
        value = self._newest.get(key)
        if value is None:
            for generation in self._older:
                value = generation.get(key)
                if value is not None:
                    break
        return value

    def clear(self) -> None:
        self._newest = {}
        self._older = ()

    def __contains__(self, key: object) -> bool:
        return key in self._newest or any(key in generation for generation in self._older)

    def __len__(self) -> int:
        """Entries held (a key remembered again while in an older generation counts twice)."""
        return len(self._newest) + sum(len(generation) for generation in self._older)

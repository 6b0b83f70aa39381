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
(user, client message id) tuple keys, whose release frees ~250,000 objects (0.9 ms with the
joined keys and packed values below, against 3.7 ms for the same 50,000 entries as tuples).
The map holds at most ``limit`` entries, and the newest ``(GENERATIONS - 1) * (limit // GENERATIONS)`` keys are
always among them (150,000 of a limit of 200,000; the ``OrderedDict`` held exactly
``limit``). Values must not be None: ``get`` returns None for a missing key.

Keep keys and values atomic (``str``, ``int``, ``bytes``): ``join_key`` and ``pack_ints``
make one from several. A dict holding only atomic objects is not tracked by the cyclic
garbage collector, which never walks it; one holding fresh tuples is, and the collector
walked every entry of each generation until a full collection untracked it. Measured in a
loaded node (``bench chat``, store on) with the tuples: the collector's old generation held
~20,000 objects with 400,000-650,000 references, nearly all in these dicts, and its
collections paused the event loop for 22-50 ms, its middle ones for 8-12 ms.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["GENERATIONS", "RecentMap", "join_key", "pack_ints", "split_pair", "unpack_ints"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

GENERATIONS = 4
_SEPARATOR = "\x00"
_BITS = 64
_MASK = (1 << _BITS) - 1


def join_key(*parts: str) -> str:
    """One ``str`` key from several parts; all but the last must hold no NUL (user names and
    group ids cannot), so the key is unambiguous whatever the last part holds."""
    return _SEPARATOR.join(parts)


def split_pair(joined: str) -> tuple[str, str]:
    """The two parts of ``join_key(first, second)``."""
    first, _, second = joined.partition(_SEPARATOR)
    return first, second


def pack_ints(*values: int) -> int:
    """One ``int`` from unsigned 64-bit values, the first in the highest bits."""
    packed = 0
    for value in values:
        if not 0 <= value <= _MASK:
            raise ValueError(f"{value} is not an unsigned 64-bit value")
        packed = packed << _BITS | value
    return packed


def unpack_ints(packed: int, count: int) -> tuple[int, ...]:
    """The ``count`` values of ``pack_ints``, in order."""
    return tuple((packed >> (_BITS * (count - 1 - i))) & _MASK for i in range(count))


class RecentMap(Generic[K, V]):
    """At most ``limit`` entries, always the newest ``(generations - 1) * (limit // generations)``."""

    __slots__ = ("limit", "_per_generation", "_keep", "_newest", "_older", "generation")

    def __init__(self, limit: int, generations: int = GENERATIONS) -> None:
        if generations < 2 or limit < generations:
            raise ValueError("generations must be >= 2 and limit >= generations")
        self.limit = limit
        self._per_generation = limit // generations
        self._keep = generations - 1
        self._newest: dict[K, V] = {}
        self._older: tuple[dict[K, V], ...] = ()  # newest first
        #: how many times the newest generation was started: an entry remembered during
        #: generation g is held while ``generation - g <= keep`` (``im.send_epoch``)
        self.generation = 0

    @property
    def keep(self) -> int:
        """Older generations held beside the newest."""
        return self._keep

    def remember(self, key: K, value: V) -> None:
        """Set ``key`` (in the newest generation, where it shadows an older value)."""
        newest = self._newest
        newest[key] = value
        if len(newest) >= self._per_generation:
            self._older = (newest, *self._older[: self._keep - 1])
            self._newest = {}
            self.generation += 1

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
        self.generation += self._keep + 1  # nothing of any earlier generation is held

    def __contains__(self, key: object) -> bool:
        return key in self._newest or any(key in generation for generation in self._older)

    def __len__(self) -> int:
        """Entries held (a key remembered again while in an older generation counts twice)."""
        return len(self._newest) + sum(len(generation) for generation in self._older)

"""The iterative node lookup (Maymounkov & Mazières 2002, §2.3), sans-I/O.

The lookup keeps every peer it has heard of, sorted by XOR distance to the target. The
*window* is the ``k`` closest that have not failed. Rules:

- Query the closest not-yet-contacted peer of the window while fewer than ``alpha`` requests
  are in flight (the paper's α parallel, asynchronous FIND_NODEs; a slow peer never stalls
  the others, and a failure widens the window to the next candidate).
- A response adds the closer peers it names (never ourselves) as candidates, one hop further.
- Done when every peer in the window has answered (the paper's "queried and gotten responses
  from the k closest nodes it has seen"), or when no candidate is left to ask.

The owner sends the requests (FIND_NODE or GET, the same walk) and reports each outcome
with ``on_success`` / ``on_failure``; the lookup never sends, awaits or reads a clock.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dht.ids import key_to_int, node_id
from dht.messages import PeerInfo

__all__ = ["Candidate", "CandidateState", "Lookup"]


class CandidateState(enum.Enum):
    NOT_CONTACTED = "not_contacted"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_NOT_CONTACTED = CandidateState.NOT_CONTACTED
_WAITING = CandidateState.WAITING
_SUCCEEDED = CandidateState.SUCCEEDED
_FAILED = CandidateState.FAILED


@dataclass(slots=True)
class Candidate:
    peer: bytes
    addrs: tuple[str, ...]
    distance: int
    hops: int  # 1 for the peers we started from, n + 1 for peers named by a hop-n peer
    state: CandidateState = CandidateState.NOT_CONTACTED


class Lookup:
    """One iterative walk toward ``target`` (see the module docstring for the rules)."""

    def __init__(
        self, target: bytes, seeds: Iterable[PeerInfo], *, k: int = 20, alpha: int = 3, own_peer: bytes = b""
    ) -> None:
        self.target = target
        self.target_int = key_to_int(target)
        self.k = k
        self.alpha = alpha
        self.own_peer = own_peer
        self.inflight = 0
        self.finished = False  # updated by next_queries()
        self.queried = 0
        self.failed = 0
        self.candidates: dict[bytes, Candidate] = {}
        self._order: list[tuple[int, bytes]] = []
        for seed in seeds:
            self._add(seed, hops=1)

    def _add(self, info: PeerInfo, hops: int) -> None:
        known = self.candidates.get(info.peer)
        if known is not None:
            known.hops = min(known.hops, hops)
            return
        if info.peer == self.own_peer:
            return
        dist = int.from_bytes(node_id(info.peer), "big") ^ self.target_int
        self.candidates[info.peer] = Candidate(info.peer, info.addrs, dist, hops)
        bisect.insort(self._order, (dist, info.peer))

    def _window(self) -> Iterator[Candidate]:
        """The k closest candidates that have not failed, closest first."""
        taken = 0
        for _, peer in self._order:
            cand = self.candidates[peer]
            if cand.state is _FAILED:
                continue
            yield cand
            taken += 1
            if taken >= self.k:
                return

    def next_queries(self) -> list[Candidate]:
        """Candidates to query now, each marked WAITING (the caller must send to all of them).

        Also updates ``finished``: every peer of the window has answered.
        """
        out: list[Candidate] = []
        done = True
        for cand in self._window():
            state = cand.state
            if state is _SUCCEEDED:
                continue
            done = False
            if state is _NOT_CONTACTED and self.inflight < self.alpha:
                cand.state = _WAITING
                out.append(cand)
                self.inflight += 1
                self.queried += 1
        self.finished = done
        return out

    def on_success(self, peer: bytes, closer: Iterable[PeerInfo]) -> None:
        """``peer`` answered and named ``closer`` peers."""
        cand = self.candidates.get(peer)
        if cand is None or cand.state is not CandidateState.WAITING:
            return
        cand.state = CandidateState.SUCCEEDED
        self.inflight -= 1
        for info in closer:
            self._add(info, cand.hops + 1)

    def on_failure(self, peer: bytes) -> None:
        """``peer`` timed out or could not be reached."""
        cand = self.candidates.get(peer)
        if cand is None or cand.state is not CandidateState.WAITING:
            return
        cand.state = CandidateState.FAILED
        self.inflight -= 1
        self.failed += 1

    def closest(self) -> list[Candidate]:
        """The k closest peers that answered, closest first."""
        out = [c for c in self._window() if c.state is CandidateState.SUCCEEDED]
        return out[: self.k]

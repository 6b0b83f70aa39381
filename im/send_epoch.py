"""Send epochs: client message ids this node knows to be fresh without a store read.

A send with a ``client_msg_id`` stores an idempotency record (``Insert``): a retry finds
it and gets the first send's id back (``protocol.md`` §7). Proving a fresh id absent costs
a read of a random key, which the node's recent-sends map cannot replace on its own: a
retry may come after the node restarted, or from another node's session. An epoch names
one node process (a random boot id) and one generation of its recent-sends map
(``im.recent.RecentMap``): ``Session.send_epoch`` tells a client the current one, and
``Sent.send_epoch`` a newer one. A client that prefixes a new id with it (``EPOCH:rest``)
promises the id was first used after it learned the epoch, so any earlier send of the id
went to this process since that generation, and the map still holds it while at most
``RecentMap.keep`` generations passed: absent there, the id is fresh and the record is
written with a ``Put``. Any other id (no prefix, another process's epoch, an older
generation) takes the ``Insert``, and so does one whose earlier send failed after its write
may have applied: the messenger keeps that id in the same map (``_DOUBT``), so the doubt
lasts as long as an epoch could vouch for the id.

A client that reuses a prefixed id across epochs against this promise can only store its
own message twice.

Only for a store no other process writes (``Messenger(exclusive_store=True)``: the node's
journaled default store). With a shared one a retry can reach another node while the first
send is still being written (a slow commit, a cross-shard batch rolled forward after its
node died): the first send's Put would then not conflict with the retry's Insert, and the
message would be stored twice. Disabled, the epoch is empty and every id is checked.
"""

from __future__ import annotations

import secrets

from im.recent import RecentMap

__all__ = ["SendEpochs"]


class SendEpochs:
    """The current epoch of ``sent`` (the messenger's recent-sends map) and the test of an id."""

    def __init__(self, sent: RecentMap[str, int], *, enabled: bool = True) -> None:
        self._boot = secrets.token_hex(4) if enabled else ""
        self._sent = sent

    @property
    def current(self) -> str:
        """The epoch to tell clients ("" when disabled)."""
        return f"{self._boot}.{self._sent.generation}" if self._boot else ""

    def known_fresh(self, client_msg_id: str) -> bool:
        """``client_msg_id`` carries an epoch of this process recent enough that the map
        would hold an earlier send of it; the caller found no entry for it in the map and no
        send of it in flight."""
        prefix, colon, _ = client_msg_id.partition(":")
        boot, dot, generation = prefix.partition(".")
        if not (colon and dot and self._boot) or boot != self._boot:
            return False
        if not (generation.isascii() and generation.isdigit()) or len(generation) > 18:
            return False
        age = self._sent.generation - int(generation)
        return 0 <= age <= self._sent.keep

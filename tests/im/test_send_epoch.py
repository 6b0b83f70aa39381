"""``im.send_epoch``: which client message ids a node may take as unused without a store read."""

from __future__ import annotations

from im.recent import RecentMap
from im.send_epoch import SendEpochs


def test_an_epoch_vouches_while_the_map_still_holds_its_generation() -> None:
    sent: RecentMap[str, int] = RecentMap(8, generations=4)  # 2 entries per generation, 3 kept
    epochs = SendEpochs(sent)
    stamped = epochs.current
    assert epochs.known_fresh(f"{stamped}:abc")
    for i in range(6):  # three generations later the map still holds the stamped one
        sent.remember(f"k{i}", i + 1)
    assert sent.generation == 3 and epochs.known_fresh(f"{stamped}:abc")
    sent.remember("k6", 7)
    sent.remember("k7", 8)  # a fourth: entries of the stamped generation may be gone
    assert not epochs.known_fresh(f"{stamped}:abc")
    assert epochs.known_fresh(f"{epochs.current}:abc")


def test_ids_without_this_process_epoch_are_checked() -> None:
    epochs = SendEpochs(RecentMap(8))
    boot, generation = epochs.current.split(".")
    other = SendEpochs(RecentMap(8))
    odd = (f"{boot}.-1:y", f"{boot}.{'9' * 40}:y", f"{boot}.\u00b2:y", f"{boot}.\u0663:y")  # ² ٣: isdigit, not int()
    for cmid in ("plain", f"{boot}:x", f"{boot}.x:y", f"{other.current}:y", f"{boot}.{int(generation) + 1}:y",
                 *odd, epochs.current):  # fmt: skip
        assert not epochs.known_fresh(cmid), cmid
    assert epochs.known_fresh(f"{epochs.current}:y")


def test_clearing_the_map_retires_every_epoch() -> None:
    sent: RecentMap[str, int] = RecentMap(8)
    epochs = SendEpochs(sent)
    before = epochs.current
    sent.clear()
    assert not epochs.known_fresh(f"{before}:x") and epochs.known_fresh(f"{epochs.current}:x")


def test_a_disabled_epoch_is_empty_and_vouches_for_nothing() -> None:
    epochs = SendEpochs(RecentMap(8), enabled=False)
    assert epochs.current == ""
    assert not epochs.known_fresh(".0:x") and not epochs.known_fresh(":x")

"""prefix_end and the pure group planner."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from store import Delete, Insert, KeyExists, Put, prefix_end
from store.batch import plan_group


@given(prefix=st.binary(max_size=8), suffix=st.binary(max_size=16))
def test_prefix_end_bounds_every_key_with_the_prefix(prefix: bytes, suffix: bytes) -> None:
    end = prefix_end(prefix)
    assert prefix <= prefix + suffix < end


@given(prefix=st.binary(min_size=1, max_size=8), other=st.binary(max_size=16))
def test_prefix_end_is_tight(prefix: bytes, other: bytes) -> None:
    if prefix.rstrip(b"\xff") and not other.startswith(prefix) and other > prefix:
        assert other >= prefix_end(prefix)


def test_prefix_end_examples() -> None:
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") > b"\xff\xff" + b"\xff" * 63


def test_plan_group_replays_batches_in_order() -> None:
    batches = [
        [Put(b"a", b"1")],
        [Insert(b"a", b"2")],  # conflicts with the accepted batch before it
        [Insert(b"db", b"x")],  # conflicts with the stored state
        [Delete(b"a"), Insert(b"a", b"3"), Insert(b"n", b"4")],
        [Insert(b"n", b"5")],
    ]
    plan = plan_group(batches, {b"db"}.__contains__)
    assert [type(o) for o in plan.outcomes] == [type(None), KeyExists, KeyExists, type(None), KeyExists]
    assert plan.final == {b"a": b"3", b"n": b"4"}
    assert plan.fresh_inserts == {b"a": b"3", b"n": b"4"}
    assert plan.upserts() == {}
    assert plan.deletes() == []


def test_plan_group_upserts_and_deletes() -> None:
    plan = plan_group([[Insert(b"k", b"1")], [Put(b"k", b"2"), Put(b"d", b"x"), Delete(b"d")]], lambda k: False)
    assert plan.fresh_inserts == {b"k": b"1"}
    assert plan.upserts() == {b"k": b"2"}
    assert plan.deletes() == [b"d"]

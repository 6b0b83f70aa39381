"""``im.eager.start``: a request's first step runs at once; a task only for what waits."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from im import eager

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("eager_test", default="")


async def test_a_coroutine_that_never_waits_runs_to_its_end_without_a_task() -> None:
    seen: list[object] = []

    async def request() -> None:
        VAR.set("inside")
        seen.append(asyncio.current_task())

    tasks_before = len(asyncio.all_tasks())
    assert eager.start(request()) is None
    assert seen == [asyncio.current_task()]  # ran synchronously, in the caller (no task of its own)
    assert len(asyncio.all_tasks()) == tasks_before
    assert VAR.get() == ""  # its context was a copy: nothing leaks into the caller's


async def test_a_coroutine_that_waits_continues_in_a_task_with_its_context() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def request() -> None:
        VAR.set("req-1")
        steps.append("first")
        value = await gate
        steps.append(f"after {value} in {VAR.get()}")
        await asyncio.sleep(0)  # a bare yield, then another real wait
        await asyncio.sleep(0.001)
        steps.append("done")

    task = eager.start(request())
    assert task is not None and steps == ["first"]
    assert VAR.get() == ""
    gate.set_result(7)
    await asyncio.wait_for(task, 5)
    assert steps == ["first", "after 7 in req-1", "done"]


async def test_an_error_after_the_first_wait_fails_the_task() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def request() -> None:
        await gate
        raise ValueError("bad request")

    task = eager.start(request())
    assert task is not None
    gate.set_result(None)
    with pytest.raises(ValueError, match="bad request"):
        await task


async def test_an_error_before_the_first_wait_reaches_the_caller() -> None:
    async def request() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        eager.start(request())


async def test_cancelling_the_task_cancels_the_coroutine_and_runs_its_cleanup() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def request() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    task = eager.start(request())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert never.cancelled()


async def test_a_request_may_catch_an_error_thrown_into_its_wait() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    outcome: list[str] = []

    async def request() -> None:
        try:
            await gate
        except RuntimeError as exc:
            outcome.append(f"caught {exc}")
        await asyncio.sleep(0)
        outcome.append("went on")

    task = eager.start(request())
    assert task is not None
    gate.set_exception(RuntimeError("store down"))
    await asyncio.wait_for(task, 5)
    assert outcome == ["caught store down", "went on"]

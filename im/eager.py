"""Run a coroutine's first step at once; make a task only if it has to wait.

Most client requests never wait: a delivery ack, a send in no-store mode, a presence
subscription answered from memory. ``asyncio.create_task`` for each costs a Task, a
``call_soon`` for its first step, a done callback and a set entry, all for nothing (the
chat benchmark's paced phase: ``create_task`` alone was ~7 % of the node's loop thread,
acks being one request per message at low rates). ``start`` runs the coroutine's first
step in a copy of the current context, like a task's first step but without the task
(Python 3.12's eager task factory, https://docs.python.org/3.12/library/asyncio-task.html#eager-task-factory,
does the same; timnode supports 3.11). When that step suspends on a future, a Task takes
over the rest in the same context, awaiting the very future the coroutine yielded.

Limits: during the first step ``asyncio.current_task()`` is None, so code that may run
before the first suspension must not need a task (``asyncio.timeout`` does; request paths
use ``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start"]


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` until it first waits; None if it finished, else the Task running the rest.

    An exception raised before the first wait propagates to the caller, as the coroutine
    had been called directly (callers wrap their requests so that none escapes).
    """
    context = contextvars.copy_context()
    try:
        yielded = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_resume(coro, yielded), context=context)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Drive ``coro`` on from a suspension: hand the Task what it yielded, pass back what
    the Task sends or throws (a result, or cancellation) until the coroutine returns."""
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # noqa: BLE001 - cancellation and the like go to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(value)
            except StopIteration:
                return

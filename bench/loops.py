"""Event-loop choice for bench processes: uvloop when installed (as the node uses), else asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "new_runner", "run"]

T = TypeVar("T")


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return a loop factory for ``asyncio.Runner``: ``auto``, ``uvloop`` or ``asyncio``.

    Raises:
        ImportError: ``uvloop`` was asked for and is not installed.
    """
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_runner(kind: str = "auto") -> asyncio.Runner:
    """An ``asyncio.Runner`` on the chosen loop; keep it to reuse the loop across ``run()`` calls."""
    return asyncio.Runner(loop_factory=loop_factory(kind))


def run(coro: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run ``coro`` to completion on a fresh loop of the chosen kind."""
    with new_runner(kind) as runner:
        return runner.run(coro)

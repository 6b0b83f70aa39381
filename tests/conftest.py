"""Shared fixtures: real node processes on 127.0.0.1 with --no-mdns."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from testnet.process import NodeProcess


@pytest.fixture
def node_factory(tmp_path: pathlib.Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start nodes: ``node_factory("--no-store", name="a")``; all are stopped at teardown."""
    nodes: list[NodeProcess] = []

    def make(*args: str, name: str = "", start: bool = True, **kwargs: object) -> NodeProcess:
        node = NodeProcess(tmp_path / (name or f"node{len(nodes)}"), *args, **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        return node.start() if start else node

    yield make
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.kill()


@pytest.fixture
def node(node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    """One running node with the embedded SQLite store."""
    return node_factory()

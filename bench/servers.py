"""Servers under test, each in its own process: the timnode node and the raw relay.

Both announce themselves by writing ``{"url": "ws://127.0.0.1:PORT", "pid": N}`` to a
JSON file once they listen; :func:`start_server` polls for it. Everything binds
127.0.0.1. The server's stdout/stderr go to a log file whose tail is shown when
the server fails to start. Processes are stopped by their own handle
(SIGTERM, then SIGKILL after 5 s) and their temporary directories removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.report import process_cpu_s, process_rss_mb

__all__ = ["REPO_ROOT", "ServerFailed", "ServerProcess", "node_server", "relay_server", "start_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServerFailed(RuntimeError):
    """The server process exited or did not announce itself in time."""


@dataclass(slots=True)
class ServerProcess:
    """A running server: its process handle, announced URL and pid, and log file."""

    proc: subprocess.Popen[bytes]
    url: str
    pid: int
    log_path: str

    def rss_mb(self) -> float | None:
        """Resident memory of the announced server process, in MiB."""
        return process_rss_mb(self.pid)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the announced server process."""
        return process_cpu_s(self.pid) or 0.0

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)


def _log_tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def _read_announcement(path: str) -> dict[str, object] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None  # not there yet, or half-written
    return data if isinstance(data, dict) and "url" in data else None


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def start_server(argv: list[str], announce_path: str, log_path: str, timeout: float = 30.0) -> ServerProcess:
    """Start ``python <argv>`` and wait until it writes ``announce_path``.

    Raises:
        ServerFailed: the process exited first, or ``timeout`` passed (the process is then stopped).
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_child_env(), cwd=str(REPO_ROOT),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _read_announcement(announce_path)
        if info is not None:
            pid = info.get("pid")
            return ServerProcess(proc, str(info["url"]), pid if isinstance(pid, int) else proc.pid, log_path)
        if proc.poll() is not None:
            raise ServerFailed(f"{' '.join(argv)} exited with {proc.returncode}:\n{_log_tail(log_path)}")
        time.sleep(0.05)
    ServerProcess(proc, "", proc.pid, log_path).stop()
    late = f"{' '.join(argv)} did not announce itself within {timeout:.0f} s"
    raise ServerFailed(f"{late}:\n{_log_tail(log_path)}")


def node_command(data_dir: str, store: bool, extra: list[str]) -> list[str]:
    """The ``python -m timnode`` arguments for a benchmark node."""
    argv = [
        "-m", "timnode", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-mdns",
        "--max-conns-per-ip", "0", "--rate-limit", "0", "--log-level", "warning",
    ]
    if not store:
        argv.append("--no-store")
    return argv + extra


@contextmanager
def node_server(
    store: bool = True, extra: list[str] | None = None, timeout: float = 30.0
) -> Iterator[ServerProcess]:
    """A node on 127.0.0.1 with a fresh data dir; stopped and removed on exit."""
    tmp = tempfile.mkdtemp(prefix="bench-node-")
    try:
        server = start_server(
            node_command(tmp, store, extra or []), os.path.join(tmp, "node.json"),
            os.path.join(tmp, "bench-node.out"), timeout,
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def relay_server(loop: str = "auto", timeout: float = 30.0) -> Iterator[ServerProcess]:
    """The raw relay (:mod:`bench.relay`) on 127.0.0.1; stopped on exit."""
    tmp = tempfile.mkdtemp(prefix="bench-relay-")
    try:
        announce = os.path.join(tmp, "relay.json")
        argv = ["-m", "bench.relay", "--port-file", announce, "--loop", loop]
        server = start_server(argv, announce, os.path.join(tmp, "relay.out"), timeout)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

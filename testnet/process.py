"""Start, stop and kill real ``timnode`` node processes (tests, benchmarks, the testnet).

A node writes ``<data-dir>/node.json`` once it listens; :meth:`NodeProcess.start` waits
for that file, so callers get a node that accepts connections. Nodes bind to 127.0.0.1
with an ephemeral port and ``--no-mdns`` unless told otherwise: nothing reaches the
machine's real interfaces. ``mdns=True`` and ``prefix=("ip", "netns", "exec", NS)`` are for
the network-namespace test only.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

__all__ = ["NodeProcess", "NodeStartError", "stop_all"]


class NodeStartError(RuntimeError):
    """The node exited or did not become ready in time."""


class NodeProcess:
    """One ``python -m timnode`` process with its own data directory."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *extra_args: str,
        listen: str = "127.0.0.1:0",
        log_level: str = "info",
        env: dict[str, str] | None = None,
        mdns: bool = False,
        prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = pathlib.Path(data_dir)
        self.listen = listen
        self.extra_args: list[str] = list(extra_args)
        self.log_level = log_level
        self.env = env
        self.mdns = mdns
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, object] = {}
        self.log_path = self.data_dir / "node.log"

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def http_url(self) -> str:
        return "http" + self.url[2:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            *self.prefix, sys.executable, "-m", "timnode", "--listen", self.listen, "--data-dir", str(self.data_dir),
            *([] if self.mdns else ["--no-mdns"]), "--log-level", self.log_level, *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 30.0, args: Sequence[str] = ()) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir / "node.json"
        ready.unlink(missing_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        root = str(pathlib.Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([*self.command(), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeStartError(f"node exited with {self.proc.returncode}: {self.log_tail()}")
            if ready.exists():
                try:
                    self.info = json.loads(ready.read_text())
                    return self
                except json.JSONDecodeError:
                    pass
            time.sleep(0.02)
        self.kill()
        raise NodeStartError(f"node not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (Ctrl-C) and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        stop_all([self], timeout=10.0)


def stop_all(nodes: Iterable[NodeProcess], timeout: float = 5.0) -> None:
    """Stop every node (Ctrl-C, then SIGKILL after ``timeout``), each whatever the others did."""
    for node in nodes:
        try:
            node.stop(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # stop() killed it

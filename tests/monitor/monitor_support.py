"""What the monitoring tests share: ``newsletter`` commands as processes of their own (``serve`` waited for
until it listens), and the delivery tests' helpers made importable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DELIVER_TESTS = str(Path(__file__).resolve().parent.parent / "deliver")
if DELIVER_TESTS not in sys.path:
    sys.path.insert(0, DELIVER_TESTS)

from mailkit import free_port  # noqa: E402
from support import wait_listening

CLI = "from newsletter.cli import main; main()"


class Process:
    """A ``newsletter`` command in a child process; ``serve`` ones are waited for until they listen."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else ""
        environ = {**os.environ, "NEWSLETTER_DATABASE_URL": "", **(env or {})}
        self.stderr = config.parent / f"stderr-{time.monotonic_ns()}.log"
        self._err = self.stderr.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-c", CLI, "--config", str(config), *args],
                                     env=environ, stdout=subprocess.DEVNULL, stderr=self._err)
        if port is not None:
            self._wait_listening()

    def _wait_listening(self) -> None:
        try:
            wait_listening(self.proc, self.port, 60, "newsletter serve did not start")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.stderr.read_text()}") from None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode


def serve(processes: list[Process], config: Path, *extra: str, env: dict[str, str] | None = None) -> Process:
    port = free_port()
    p = Process(config, "serve", "--port", str(port), *extra, env=env, port=port)
    processes.append(p)
    return p


def command(processes: list[Process], config: Path, *args: str, env: dict[str, str] | None = None) -> Process:
    p = Process(config, *args, env=env)
    processes.append(p)
    return p



"""The process supervisor of `make run`: the web server and its helpers in one terminal.

- Each process runs in a process group of its own; its output is printed line by line,
  prefixed with its name.
- A helper that exits (the Stripe simulator, a Celery worker restarting on SIGHUP, Flower) is
  started again after a short pause that doubles while it keeps failing (at most 30 s),
  instead of taking the whole stack down.
- When the web server exits, or on Ctrl-C / SIGTERM, every process is stopped (SIGTERM, then
  SIGKILL after a grace period) and the supervisor exits: 0 when asked to stop, otherwise
  the web server's exit code.
- Secrets reach the processes through their environment, never their command lines (which
  `ps` shows), and nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

RESTART_PAUSE_MAX_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
# A helper that ran this long before exiting is healthy again: its pause starts over.
HEALTHY_AFTER_SECONDS = 60.0


@dataclass
class Program:
    name: str
    command: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    pause: float = 1.0
    restarts: int = 0
    readers: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        commands: Mapping[str, str],
        *,
        main: str = "web",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.programs = {name: Program(name, command) for name, command in commands.items()}
        self.main = main
        self.env = dict(env if env is not None else os.environ)
        self.cwd = cwd
        self.out = out
        self.width = max(len(name) for name in commands)
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | {line}\n")
            self.out.flush()

    def _start(self, program: Program) -> None:
        # A command that chains steps (`a && exec b`) runs in a shell; others directly.
        argv = (
            ["/bin/sh", "-c", program.command]
            if "&&" in program.command
            else shlex.split(program.command)
        )
        process = subprocess.Popen(  # noqa: S603 - our own commands
            argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own group: a signal reaches its children too
        )
        program.process, program.started_at = process, time.monotonic()
        reader = threading.Thread(target=self._relay, args=(program, process), daemon=True)
        reader.start()
        program.readers.append(reader)
        self.say("system", f"{program.name} started (pid {process.pid})")

    def _relay(self, program: Program, process: subprocess.Popen) -> None:
        assert process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        with process.stdout:
            for line in process.stdout:
                self.say(program.name, line.rstrip("\n"))

    def stop(self, *_signal_args) -> None:
        self._stopping.set()

    def _terminate_all(self) -> None:
        running = [p for p in self.programs.values() if p.process and p.process.poll() is None]
        for program in running:
            self._signal(program, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for program in running:
            try:
                program.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(program, signal.SIGKILL)
                program.process.wait()
            self.say("system", f"{program.name} stopped")

    @staticmethod
    def _signal(program: Program, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(program.process.pid, number)

    def run(self, *, handle_signals: bool = True) -> int:
        """Start everything; supervise until the main process exits or a stop is asked.

        With `handle_signals` (the main thread only), Ctrl-C and SIGTERM ask for the stop.
        """
        numbers = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        previous = {number: signal.signal(number, self.stop) for number in numbers}
        try:
            for program in self.programs.values():
                self._start(program)
            due: dict[str, float] = {}
            while not self._stopping.wait(0.2):
                for program in self.programs.values():
                    if program.name in due:
                        if time.monotonic() >= due[program.name]:
                            del due[program.name]
                            program.restarts += 1
                            self._start(program)
                        continue
                    code = program.process.poll()
                    if code is None:
                        continue
                    if program.name == self.main:
                        self.say("system", f"{program.name} exited ({code}); stopping everything")
                        self._terminate_all()
                        return code
                    if time.monotonic() - program.started_at > HEALTHY_AFTER_SECONDS:
                        program.pause = 1.0
                    self.say(
                        "system",
                        f"{program.name} exited ({code}); restarting in {program.pause:.0f} s",
                    )
                    due[program.name] = time.monotonic() + program.pause
                    program.pause = min(program.pause * 2, RESTART_PAUSE_MAX_SECONDS)
            self.say("system", "stopping")
            self._terminate_all()
            return 0
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            for program in self.programs.values():
                for reader in program.readers:
                    reader.join(5)

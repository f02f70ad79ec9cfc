"""train.log: what the console showed, kept in the run directory (Trainer logs to the console through
`logging`, and keeps no file of it).

`ConsoleLog` puts a tee in front of sys.stdout and sys.stderr for the duration of a command: every write
reaches the terminal exactly as before, and each complete line is kept too. Until the run directory is
known (`attach`), lines wait in memory; then they are written out, and every later line is appended as it
completes, so a killed run's log ends at its last line. A progress bar redraws its line with carriage
returns: only what the line finally showed is kept (the text after its last '\r'), one line per bar
rather than thousands of redraws. Logging handlers that hold a stream of their own (set up before the tee)
write past it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path


class _Tee:
    """A text stream that writes through to `stream` and hands each completed line to `keep`."""

    def __init__(self, stream, keep):
        self.stream, self.keep, self.partial = stream, keep, ""

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.keep(line.rstrip("\r").rsplit("\r", 1)[-1])
        return written

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the terminal's own
        return getattr(self.stream, name)


class ConsoleLog:
    """`with ConsoleLog() as console:` ... `console.attach(run_dir / "train.log")`. Outside a `with`,
    attach does nothing (a caller that owns the console, a test, keeps it)."""

    def __init__(self, command: list[str] | None = None):
        self.command = " ".join(command or [])
        self.lines: list[str] = []
        self.file = None
        self.active = False
        self.saved = None
        self.tees: list[_Tee] = []

    def __enter__(self) -> "ConsoleLog":
        self.saved = sys.stdout, sys.stderr
        self.tees = [_Tee(sys.stdout, self.keep), _Tee(sys.stderr, self.keep)]
        sys.stdout, sys.stderr = self.tees
        self.active = True
        return self

    def keep(self, line: str) -> None:
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
        else:
            self.lines.append(line)

    def attach(self, path: Path) -> None:
        """Append the lines so far, and from now on each line as it completes, to `path` (a resumed run
        adds to its log). The first line names the command."""
        if not self.active or self.file is not None:
            return
        self.file = open(path, "a", encoding="utf-8")
        self.file.write(f"# {datetime.now().isoformat(timespec='seconds')} {self.command}\n")
        for line in self.lines:
            self.keep(line)
        self.lines = []

    def __exit__(self, *exc) -> None:
        for tee in self.tees:
            if tee.partial.strip():  # a last line without its newline
                self.keep(tee.partial.rstrip("\r").rsplit("\r", 1)[-1])
        sys.stdout, sys.stderr = self.saved
        self.active = False
        if self.file is not None:
            self.file.close()
            self.file = None

"""The one error hierarchy of msmd-prep.

The CLI catches :class:`MsmdPrepError`, prints one line naming the file, the
stage and the cause, and goes on with the next piece.  Any other exception is
a bug and keeps its traceback.
"""
from __future__ import annotations


class MsmdPrepError(Exception):
    """Root of all errors that msmd-prep reports as a failed piece."""


class ConfigError(MsmdPrepError):
    """An option or config value is invalid; the message repeats the value."""


class InputError(MsmdPrepError):
    """An input file cannot be used (unreadable, empty, not music)."""


class ToolError(MsmdPrepError):
    """An external tool failed.

    Parameters
    ----------
    tool : str
        Name of the tool (``lilypond``, ``convert-ly``, ``fluidsynth``).
    command : list of str
        The command line that was run.
    returncode : int or None
        Exit status; ``None`` when the tool was killed by the time limit.
    stderr_tail : str
        The last lines of the tool's error output.
    """

    def __init__(self, tool: str, command: list[str], returncode: int | None,
                 stderr_tail: str, cause: str = "") -> None:
        self.tool = tool
        self.command = list(command)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        status = "timed out" if returncode is None else f"exit {returncode}"
        head = cause or f"{tool} failed ({status})"
        super().__init__(f"{head}: {stderr_tail.strip()}" if stderr_tail.strip() else head)


class AlignmentError(MsmdPrepError):
    """Note heads and performance events do not match one to one as expected."""


class OutputError(MsmdPrepError):
    """An output cannot be written (full disk, file size limit, permissions).

    The message names the path and the cause as the system gave it.
    """

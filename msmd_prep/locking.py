"""One run at a time per output folder.

:func:`folder_lock` holds an exclusive ``flock`` on a lock file for as long
as a run writes into a folder.  A second run on the same folder is refused at
once with a message naming the run that holds it.  The kernel drops the lock
when its process ends, however it ends, so a lock file left by a killed run is
stale by construction: the next run takes it over without asking.  (The lock
is taken by the process that starts the run; Dask workers write only into
their own piece folders under it.)
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = ".msmd-prep.lock"


@contextmanager
def folder_lock(lock_file: Path, what: str) -> Iterator[None]:
    """Hold the lock ``lock_file`` while the body runs.

    Parameters
    ----------
    lock_file : Path
        The lock file; its folder must exist.  It is left in place (removing
        it would race with a run taking it); only the ``flock`` on it counts.
    what : str
        The folder the lock protects, for the message.

    Raises
    ------
    ConfigError
        Another live run holds the lock; the message names its pid, host and
        start time, as it recorded them.
    """
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{what} is in use by another msmd-prep run "
                              f"({_holder(lock_file)}); wait for it to finish or "
                              "choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime())}).encode())
        yield
    finally:
        os.close(fd)


def _holder(lock_file: Path) -> str:
    """Who holds ``lock_file``, as its holder wrote it."""
    try:
        info = json.loads(lock_file.read_text())
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"

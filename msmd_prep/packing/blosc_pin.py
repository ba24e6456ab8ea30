"""Blosc compression with fixed settings: the same bytes whatever the environment says.

c-blosc (in hdf5plugin's HDF5 filter and in python-blosc) reads
``BLOSC_NTHREADS``, ``BLOSC_CLEVEL`` and other variables at every compress
call and lets them override the caller's settings; and with more than one
thread it places a chunk's compressed blocks in the order the threads
finish them (measured: three runs with ``BLOSC_NTHREADS=2``, three other
files).  python-blosc also starts with as many threads as cores.  Inside
:func:`serial_blosc` both compress in one thread with the codec's own
settings; the environment and python-blosc's thread count are restored
when the last writer leaves.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: c-blosc's variables that change what it writes (``BLOSC_NTHREADS`` is set to 1).
_MASKED = ("BLOSC_CLEVEL", "BLOSC_SHUFFLE", "BLOSC_TYPESIZE", "BLOSC_COMPRESSOR",
           "BLOSC_BLOCKSIZE", "BLOSC_SPLITMODE")
_lock = threading.Lock()
_state: dict = {"depth": 0}


@contextmanager
def serial_blosc() -> Iterator[None]:
    """Inside, Blosc compresses in one thread, with the caller's settings (re-entrant)."""
    import blosc

    with _lock:
        if _state["depth"] == 0:
            names = ("BLOSC_NTHREADS", *_MASKED)
            _state["env"] = {name: os.environ.get(name) for name in names}
            for name in _MASKED:
                os.environ.pop(name, None)
            os.environ["BLOSC_NTHREADS"] = "1"
            _state["threads"] = blosc.set_nthreads(1)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                blosc.set_nthreads(_state["threads"])
                for name, value in _state["env"].items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

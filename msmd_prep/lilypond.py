"""Adapter for the LilyPond executables of the PyPI ``lilypond`` wheel.

LilyPond input can run Scheme, so scores are untrusted: :func:`run_lilypond`
runs LilyPond under bubblewrap with a time limit, no network, a read-only
view of nothing but LilyPond itself and the C libraries, and one writable
folder.  There is no shell and no other program inside the sandbox, so a
score can neither start programs nor write outside its build folder.
"""
from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import lilypond as _lilypond_wheel

from .errors import ConfigError, ToolError
from .resources import resource_path

#: Include file with the Scheme export of note heads and performance.
EXPORT_ILY = resource_path("lilypond", "msmd.ily")

_MEMORY_LIMIT_BYTES = 8 * 1024**3
#: Heap of a LilyPond run without garbage collection, bytes.  Guile's
#: collector takes about a quarter of LilyPond's CPU (LVB 49/2 and Mozart's
#: K. 457: 4.3 and 6.7 CPU s without it against 6.4 and 9.2, the same output
#: bytes), but without it the heap only grows, about 3.5 times the peak of a
#: collected run (1.2 GB for Schubert's D. 899/2, the largest Mutopia score
#: of the benchmark).  So a run goes without collection up to this heap, and
#: one that fills it is done again with collection.
NO_GC_HEAP_BYTES = 2 * 1024**3
#: What the collector writes when a heap is full (LilyPond may still exit 0),
#: and what LilyPond says when it cannot even start in it.
OUT_OF_HEAP = ("GC Warning: Out of Memory!", "Can't start up: not enough memory")
#: LilyPond 2.25.12 now and then dies of a signal on a score it renders fine
#: the next time (seen: SIGSEGV, SIGFPE on Chopin Op. 28/8); such a run is
#: tried again, the last time with Guile's garbage collector off and no heap
#: bound but the memory limit: Bach's BWV 851 (Mutopia) crashed in 4 runs of
#: 4 with collection and in none of 4 without (it then takes 0.2 GB).  bwrap
#: reports a child's signal N as exit 128 + N.
CRASH_CODES = {-s for s in (signal.SIGSEGV, signal.SIGFPE, signal.SIGBUS, signal.SIGABRT)} | {
    128 + s for s in (signal.SIGSEGV, signal.SIGFPE, signal.SIGBUS, signal.SIGABRT)}


def gc_attempts() -> list[dict[str, str]]:
    """The environments of a run's attempts, in order: each next one after a
    crash or a full heap of the one before."""
    return [{"GC_DONT_GC": "1", "GC_MAXIMUM_HEAP_SIZE": str(NO_GC_HEAP_BYTES)}, {},
            {"GC_DONT_GC": "1"}]


def lilypond_root() -> Path:
    """The ``lilypond-binaries`` folder of the installed wheel."""
    return Path(_lilypond_wheel.executable("lilypond")).resolve().parent.parent


def executable(name: str = "lilypond") -> Path:
    """Path of one of the wheel's programs (``lilypond``, ``convert-ly`` ...)."""
    return Path(_lilypond_wheel.executable(name))


@functools.cache
def lilypond_version() -> str:
    """Version string of the wheel's LilyPond, e.g. ``"2.25.12"``."""
    out = subprocess.run([str(executable()), "--version"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"LilyPond ([0-9.]+)", out)
    return m.group(1) if m else out.splitlines()[0]


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _library_paths(binary: Path) -> tuple[set[Path], dict[str, str]]:
    """Folders to bind and symlinks to recreate so that ``binary`` can load.

    Follows every shared library ``ldd`` names, the dynamic loader included,
    through the symlinks of a merged-/usr system (``/lib64 -> usr/lib64``).
    """
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    dirs: set[Path] = set()
    links: dict[str, str] = {}
    todo = [Path(p) for p in re.findall(r"(/\S+\.so[.0-9]*)", out)]
    while todo:
        path = todo.pop()
        for prefix in list(reversed(path.parents))[1:]:
            if prefix.is_symlink() and str(prefix) not in links:
                links[str(prefix)] = os.readlink(prefix)
        dirs.add(path.parent.resolve())
        if path.is_symlink():
            todo.append(path.parent.resolve() / os.readlink(path))
    return dirs, links


@functools.cache
def _sandbox_prefix(readonly: tuple[Path, ...]) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise ConfigError(
            "bubblewrap (bwrap) is needed to run LilyPond on untrusted scores: "
            "apt-get install bubblewrap, or pass --no-sandbox for scores you trust")
    root = lilypond_root()
    lib_dirs, links = _library_paths(root / "bin" / "lilypond")
    binds = [root / "bin" / "lilypond", root / "lib", root / "share", root / "etc",
             *sorted(lib_dirs), *readonly]
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for d in binds:
        cmd += ["--ro-bind", str(d), str(d)]
    for link, target in sorted(links.items()):
        cmd += ["--symlink", target, link]
    return cmd


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))


def run_lilypond(args: list[str], *, cwd: Path, timeout_s: float, sandbox: bool = True,
                 readonly: tuple[Path, ...] = (),
                 log: str = "lilypond.log") -> subprocess.CompletedProcess:
    """Run LilyPond with ``args`` in ``cwd``, the only folder it may write.

    Parameters
    ----------
    args : list of str
        Arguments after the program name.
    cwd : Path
        Working folder, writable inside the sandbox.
    timeout_s : float
        Wall-clock limit in seconds; the run is killed when it is reached.
    sandbox : bool
        Run under bubblewrap (default).  Only turn off for trusted scores.
    readonly : tuple of Path
        Further folders LilyPond may read (include files).
    log : str
        Name of the file in ``cwd`` that keeps LilyPond's messages.

    Raises
    ------
    ToolError
        LilyPond exited non-zero or hit the time limit.
    """
    cwd = cwd.resolve()
    cmd = [str(lilypond_root() / "bin" / "lilypond"), *args]
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8",
                "XDG_CACHE_HOME": str(cwd / ".cache")}
    lily = cmd
    attempts = gc_attempts()
    for gc_env in attempts:
        env = base_env | gc_env
        cmd = lily
        if sandbox:
            prefix = _sandbox_prefix(tuple(sorted({Path(EXPORT_ILY.parent), *readonly})))
            cmd = [*prefix, "--bind", str(cwd), str(cwd), "--chdir", str(cwd), "--clearenv",
                   *[a for k, v in env.items() for a in ("--setenv", k, v)], *lily]
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True, preexec_fn=_limit_memory)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            (cwd / log).write_text(err)
            raise ToolError("lilypond", cmd, None, _tail(err),
                            cause=f"lilypond hit the time limit of {timeout_s:g} s") from None
        out_of_heap = any(line in err for line in OUT_OF_HEAP)
        if proc.returncode not in CRASH_CODES and not out_of_heap:
            break
    # Kept in the build folder, which a failed piece keeps too.
    (cwd / log).write_text(err)
    if out_of_heap:
        raise ToolError("lilypond", cmd, proc.returncode, _tail(err),
                        cause=f"lilypond ran out of memory ({_MEMORY_LIMIT_BYTES >> 30} GiB)")
    if proc.returncode != 0:
        crashed = f" (crashed {len(attempts)} times)" if proc.returncode in CRASH_CODES else ""
        raise ToolError("lilypond", cmd, proc.returncode, _error_lines(err),
                        cause=f"lilypond failed (exit {proc.returncode}){crashed}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _error_lines(stderr: str) -> str:
    """The first error messages of a LilyPond log, else its tail."""
    errors = [ln for ln in stderr.splitlines()
              if re.search(r"(error|fatal|ERROR|Unbound variable|Wrong type)", ln)]
    return "\n".join(errors[:4]) if errors else _tail(stderr)


def convert_ly(path: Path, *, from_version: str | None = None,
               timeout_s: float = 60.0) -> str:
    """Upgrade the syntax of ``path`` to this LilyPond with ``convert-ly``.

    ``convert-ly`` only rewrites text (it runs no Scheme from the score), so
    it runs outside the sandbox.  Returns the converted text; the file is not
    modified.

    Parameters
    ----------
    path : Path
        A UTF-8 LilyPond file.
    from_version : str, optional
        Version to convert from where the file has no ``\\version``.
    """
    cmd = [str(executable("convert-ly"))]
    if from_version:
        cmd.append(f"--from={from_version}")
    cmd.append(str(path))
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError("convert-ly", cmd, None, "",
                        cause=f"convert-ly hit the time limit of {timeout_s:g} s") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ToolError("convert-ly", cmd, proc.returncode,
                        _tail(proc.stderr.decode("utf-8", "replace")))
    return proc.stdout.decode("utf-8", "replace")

"""What the end-to-end benchmark and the memory test share: running one command as a fresh child
(optionally inside a memory cgroup) and reading its wall time and peak RSS, reading files into
or evicting our own files from the page cache, virtualenvs for the peers, and the machine's description."""

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"


class Outcome:
    """How one command ended: wall seconds, peak RSS in MiB, exit code or killing signal, and
    whether it was stopped for running past its time."""

    def __init__(self, wall, peak_mib, status, timed_out=False):
        self.wall = wall
        self.peak_mib = peak_mib
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.timed_out = timed_out

    @property
    def killed(self):
        return self.exit_code == -9


def run(cmd, cgroup=None, quiet=True, timeout=None):
    """Runs `cmd` as a fresh child (inside `cgroup` if given: the child joins it before exec)
    and returns its Outcome, measured with wait4; after `timeout` seconds it is killed."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            if cgroup is not None:
                cgroup.join()
            if quiet:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            os.execvp(str(cmd[0]), [str(c) for c in cmd])
        finally:
            os._exit(127)
    deadline = None if timeout is None else start + timeout
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, 0 if deadline is None else os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, 9)
            timed_out, deadline = True, None
        else:
            time.sleep(0.1)
    return Outcome(time.perf_counter() - start, usage.ru_maxrss / 1024, status, timed_out)


def measured(cmd, runs=1, before=None):
    """Best wall time and highest peak RSS MiB of `runs` runs of a command that must succeed,
    `before` called ahead of each (to evict a file). The best of several is what these noisy
    machines allow: one run of the same binary swings by a third."""
    best, peak = float("inf"), 0.0
    for _ in range(runs):
        if before:
            before()
        out = run(cmd)
        if out.exit_code != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {out.exit_code}")
        best, peak = min(best, out.wall), max(peak, out.peak_mib)
    return best, peak


def warm(*paths):
    """Reads these files through, so that a warm run finds them in the page cache: this VM's
    cache lets pages of multi-GB files go between runs (a conversion once read 600 MB of its
    2.3 GB database from disk)."""
    # One small buffer, reused: a child's peak RSS (wait4) starts from this process's RSS at
    # fork, and fresh 16 MB reads left glibc's heap 16 MB bigger.
    buf = bytearray(1 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def evict(*paths):
    """Drops only these files' pages from the page cache."""
    for p in paths:
        if Path(p).exists():
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def venv_python(work, name, packages):
    """A virtualenv under `work` with `packages`, or None with the reason printed."""
    venv = work / name
    py = venv / "bin" / "python"
    if not py.exists():
        base = os.environ.get("PYTHON313", "/root/.pyenv/versions/3.13.0/bin/python3")
        if not Path(base).exists():
            base = sys.executable
        r = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True)
        r = r.returncode == 0 and subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], capture_output=True)
        if not r or r.returncode != 0:
            print(f"skipping {name}: could not install {' '.join(packages)}")
            return None
    return py


def generate(path, layout, spans, runs=None):
    """A ferret-gen trace at `path` (of `runs` runs, or the generator's default), made anew only
    when missing or older than the generator."""
    if not path.exists() or path.stat().st_mtime < (ROOT / "tools/gen/src/main.rs").stat().st_mtime:
        extra = [] if runs is None else ["--runs", str(runs)]
        t, _ = measured([REL / "ferret-gen", "-o", path, "--spans", str(spans), "--layout", layout] + extra)
        print(f"generated {path.name}: {spans:,} spans, {path.stat().st_size / 1e9:.2f} GB in {t:.1f} s "
              f"({spans / t / 1e6:.2f}M spans/s)")


def machine():
    """Cores, memory, CPU model and kernel, for stamping results."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {cpu}, {platform.system()} {platform.release()}"

"""What the end-to-end benchmark and the memory test share: running one command as a fresh child
(optionally inside a memory cgroup) and reading its wall time and peak RSS, reading files into
or evicting our own files from the page cache, virtualenvs for the peers, and the machine's description."""

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"


class Outcome:
    """How one command ended: wall seconds, peak RSS in MiB (the command's own), exit code
    (128 + the signal for a command killed by one), and whether it was stopped for running past
    its time."""

    def __init__(self, wall, peak_mib, exit_code, timed_out=False):
        self.wall = wall
        self.peak_mib = peak_mib
        self.exit_code = exit_code
        self.timed_out = timed_out

    @property
    def killed(self):
        return self.exit_code == 128 + 9


def run(cmd, cgroup=None, quiet=True, timeout=None):
    """Runs `cmd` through `peak-rss` (inside `cgroup` if given: it joins it before exec) and
    returns its Outcome: the wall time and peak RSS of the command alone, as the launcher
    measured them (a child of this Python process would count the interpreter's own memory in
    its peak); after `timeout` seconds it is killed."""
    launcher = [REL / "peak-rss"] + [str(c) for c in cmd]
    child = subprocess.Popen(
        [str(c) for c in launcher],
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE,
        preexec_fn=cgroup.join if cgroup is not None else None,
    )
    timed_out = False
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in subprocess.run(["pgrep", "-P", str(child.pid)], capture_output=True, text=True).stdout.split():
            os.kill(int(pid), 9)
        _, err = child.communicate()
        timed_out = True
    lines = err.decode(errors="replace").splitlines()
    if not quiet:
        sys.stderr.write("\n".join(lines[:-1]) + "\n")
    last = lines[-1].split() if lines else []
    if len(last) != 3 or last[0] != "peak-rss:":
        raise RuntimeError(f"{' '.join(map(str, cmd))}: no measurement ({lines[-1:] or 'nothing'})")
    return Outcome(float(last[2]), int(last[1]) / 1024, child.returncode, timed_out)


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


def stamp(command):
    """The line a results page opens with: the commit (and whether the tree had changes), the
    machine, and the exact command that made the page."""
    head = subprocess.run(["git", "rev-parse", "--short=9", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    # The pages a bench run writes are not changes to what it measured.
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = [line for line in status.splitlines() if not line.endswith(".md")]
    commit = f"{head}{' with uncommitted changes' if dirty else ''}" if head else "no git checkout"
    return f"{datetime.date.today()} · commit {commit} · {machine()} · made by `{command}`"


# Files `warm` has settled in this process (see there).
_settled = set()


def warm(*paths):
    """Reads these files through, so that a warm run finds them in the page cache: this VM's
    cache lets pages of multi-GB files go between runs (a conversion once read 600 MB of its
    2.3 GB database from disk).

    The first time a file is warmed in a bench run it is evicted and read back, so that its
    pages are held as a write or a cold read leaves them (2 MB folios on this kernel), not as
    reclaim may have split them (4 KiB): mapping a split file cost up to five times more (a
    plain read of the 2 GB bench file 163 ms against 33; the 8 worker files 42 ms against 30),
    which moved every ratio against a plain read and the workers against one file."""
    buf = bytearray(1 << 20)
    for p in paths:
        if p not in _settled:
            evict(p)
            _settled.add(p)
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


def file_huge_pages_mb():
    """The page cache held in huge (PMD-sized) folios, machine-wide, in MB (/proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("FileHugePages:"):
            return int(line.split()[1]) / 1024
    return 0.0


def resident_bytes(path):
    """The bytes of `path` in the page cache (util-linux's `fincore`), or None without it."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(out.split()[0])


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


def generate(path, layout, spans, runs=None, seed=None):
    """A ferret-gen trace at `path` (of `runs` runs, or the generator's default; from `seed`, or
    the generator's), made anew only when missing or older than the generator."""
    if not path.exists() or path.stat().st_mtime < (ROOT / "tools/gen/src/main.rs").stat().st_mtime:
        extra = [] if runs is None else ["--runs", str(runs)]
        extra += [] if seed is None else ["--seed", str(seed)]
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

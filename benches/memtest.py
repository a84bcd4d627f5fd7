#!/usr/bin/env python3
"""`make memtest`: the original ask, a multi-GB trace analyzed on a 1 GiB machine.

Generates a BeaverDB trace (MEMTEST_SPANS, default 6,000,000 spans, about 2.3 GB), then runs
`ferret-convert`, `ferret-scan` and `ferret-scan --tree`, each inside a fresh memory cgroup (a
child of this process's own, v1 or v2, removed afterwards) limited to 1 GiB. Fails if a command is
killed, fails, or its peak RSS crosses its budget: convert 256 MiB, scan 64 MiB, Parquet export
256 MiB. Then runs
ferret-io's own analyzer under the same limit, when it can be installed, for contrast (stopped
after FERRET_IO_TIMEOUT seconds if the limit has not killed it by then). If no cgroup can be
made, or a canary touching twice the limit is not killed in one, the test fails saying why: a
memory test that cannot enforce its limit proves nothing. Peak RSS is each command's own, from
the `peak-rss` launcher. Writes benches/MEMTEST.md.

`--ci`: the CI-sized version: 500,000 spans (about 190 MB), the convert and the export limited to
256 MiB and the scans to 64 MiB, no ferret-io, no results file.
"""

import os
import subprocess
import sys
from pathlib import Path

from harness import REL, ROOT, evict, generate, run, stamp, venv_python

MIB = 1024 * 1024
CONVERT_BUDGET_MIB = 256
SCAN_BUDGET_MIB = 64
# Two row groups in flight, encoded, plus the windows behind the passes (measured: ~120 MiB).
EXPORT_BUDGET_MIB = 256
FERRET_IO_TIMEOUT = 600  # seconds


class MemoryCgroup:
    """A child of this process's memory cgroup with a hard limit; `close` removes it."""

    def __init__(self, path, version):
        self.path = path
        self.version = version

    @staticmethod
    def create(name, limit_bytes):
        """The new cgroup, or (None, why not)."""
        own = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [line.split(":", 2)[2] for line in own if line.split(":")[1] == "memory"]
        try:
            if v1:
                path = Path("/sys/fs/cgroup/memory") / v1[0].lstrip("/") / name
                path.mkdir()
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                if (path / "memory.memsw.limit_in_bytes").exists():
                    # No escaping the limit into swap.
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
                return MemoryCgroup(path, 1), None
            unified = [line.split(":", 2)[2] for line in own if line.startswith("0::")]
            if not unified:
                return None, "this process is in no memory cgroup"
            path = Path("/sys/fs/cgroup") / unified[0].lstrip("/") / name
            path.mkdir()
            (path / "memory.max").write_text(str(limit_bytes))
            (path / "memory.swap.max").write_text("0")
            return MemoryCgroup(path, 2), None
        except OSError as e:
            return None, f"cannot make a memory cgroup: {e}"

    def join(self):
        """Moves the calling process into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mib(self):
        """Peak charge of the cgroup (our RSS plus the page cache it touched), if the kernel says."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        p = self.path / name
        return int(p.read_text()) / MIB if p.exists() else None

    def oom_kills(self):
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def close(self):
        self.path.rmdir()


def step(what, cmd, limit_mib, budget_mib, tag, timeout=None):
    """Runs one command under its own cgroup (killed after `timeout` seconds, if given); returns
    a result row and whether it passed."""
    cg, why = MemoryCgroup.create(f"ferret-memtest-{os.getpid()}-{tag}", limit_mib * MIB)
    if cg is None:
        print(f"{what}: FAILED: {why}: the limit cannot be enforced")
        return (what, "none", 0.0, 0.0, None, budget_mib, f"no limit: {why}"), False
    try:
        out = run(cmd, cgroup=cg, timeout=timeout)
        charged = cg.peak_mib()
        kills = cg.oom_kills()
    finally:
        cg.close()
    if out.timed_out:
        verdict = f"stopped after {timeout} s, still running at the limit"
    elif out.killed:
        verdict = f"killed (out of memory: {kills} OOM kill)" if kills else "killed"
    elif out.exit_code != 0:
        verdict = f"failed: exit {out.exit_code}"
    elif budget_mib is not None and out.peak_mib > budget_mib:
        verdict = f"over budget ({budget_mib} MiB)"
    else:
        verdict = "ok" if budget_mib is not None else "finished"
    row = (what, f"{limit_mib} MiB", out.wall, out.peak_mib, charged, budget_mib, verdict)
    print(f"{what}: {verdict}, {out.wall:.1f} s, peak RSS {out.peak_mib:.0f} MiB")
    return row, verdict == "ok" or budget_mib is None


def canary(limit_mib):
    """Proves the limit is real: a process touching twice the limit must be killed in a cgroup."""
    cg, why = MemoryCgroup.create(f"ferret-memtest-{os.getpid()}-canary", limit_mib * MIB)
    if cg is None:
        print(f"canary: FAILED: {why}: the limit cannot be enforced")
        return False
    try:
        out = run([sys.executable, "-c", f"b = b'x' * {2 * limit_mib * MIB}"], cgroup=cg)
    finally:
        cg.close()
    print(f"canary: touching {2 * limit_mib} MiB under a {limit_mib} MiB limit was "
          + ("killed, so the limit holds" if out.killed else "NOT killed: the limit does not hold"))
    return out.killed


def main():
    ci = "--ci" in sys.argv[1:]
    spans = int(os.environ.get("MEMTEST_SPANS", 500_000 if ci else 6_000_000))
    limit = 1024
    convert_limit, scan_limit = (256, 64) if ci else (limit, limit)
    work = Path(os.environ.get("MEMTEST_DIR", ROOT / "target" / "memtest"))
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret-cli", "-p", "ferret-gen", "-p", "ferret-benches"],
                   cwd=ROOT, check=True)
    db, rec = work / f"trace-{spans}.db", work / f"trace-{spans}.ferret"
    generate(db, "beaver1", spans)
    steps = [
        ("ferret-convert", [REL / "ferret-convert", db, "-o", rec, "--force", "--quiet"], convert_limit, CONVERT_BUDGET_MIB),
        ("ferret-scan (table)", [REL / "ferret-scan", rec], scan_limit, SCAN_BUDGET_MIB),
        ("ferret-scan --tree", [REL / "ferret-scan", rec, "--tree"], scan_limit, SCAN_BUDGET_MIB),
        ("ferret-scan --to-parquet --all-runs", [REL / "ferret-scan", rec, "--all-runs", "--to-parquet", work / "export.parquet"],
         convert_limit, EXPORT_BUDGET_MIB),
    ]
    rows, passed = [], canary(scan_limit)
    for i, (what, cmd, lim, budget) in enumerate(steps):
        # Cold: the pages come in under the step's own limit, not from an earlier step's charge.
        evict(db, rec)
        row, ok = step(what, cmd, lim, budget, i)
        rows.append(row)
        passed &= ok
    if not ci:
        py = venv_python(ROOT / "target" / "bench", "ferret-io-venv", ["ferret-io==0.3.1", "beaver-db==1.3.0"])
        if py:
            # Last, on purpose: ferret-io's analyzer switches the database it opens to WAL mode.
            # Under the limit it is OOM-killed after a few minutes, or thrashes at the limit for
            # much longer: stopped after FERRET_IO_TIMEOUT seconds either way.
            row, _ = step("ferret-io `ferret analyze` (contrast)", [py.parent / "ferret", "analyze", db], limit, None,
                          "ferret-io", FERRET_IO_TIMEOUT)
            rows.append(row)
        write_results(rows, spans, db)
    print("memtest:", "passed" if passed else "FAILED")
    return 0 if passed else 1


def write_results(rows, spans, db):
    lines = [
        "# Memory test: a multi-GB trace on a 1 GiB machine",
        "",
        f"{stamp('make memtest')} (`benches/memtest.py`, part of `make bench`) · {spans:,} generated spans, "
        f"BeaverDB file {db.stat().st_size / 1e9:.2f} GB.",
        "",
        "Each command runs in its own memory cgroup, with our files evicted from the page cache first. Peak RSS is the",
        "command's own (measured by the `peak-rss` launcher, so no harness memory is in it); the cgroup's peak also counts",
        "the page cache it touched, which the kernel reclaims under the limit.",
        "",
        "| command | cgroup limit | seconds | peak RSS MiB | cgroup peak MiB | budget MiB | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for what, limit, wall, peak, charged, budget, verdict in rows:
        lines.append(f"| {what} | {limit} | {wall:.1f} | {peak:.0f} | {'' if charged is None else f'{charged:.0f}'} "
                     f"| {'' if budget is None else budget} | {verdict} |")
    lines.append("")
    (ROOT / "benches" / "MEMTEST.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

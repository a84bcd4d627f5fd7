#!/usr/bin/env python3
"""Checks an installed ferret-scan against ferret-io's own answers (`make test-wheel`).

usage: wheel_check.py BIN_DIR WORK_DIR FIXTURE.db...

For each bundled fixture database: a copy is scanned straight from its .db by BIN_DIR's
ferret-scan (which keeps a sidecar beside the copy); the default run and every run's per-function
count, errors and total time must equal the fixture's ferret-io reference, and the database's
bytes must be unchanged.
"""

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path


def scan(binary, db, *args):
    out = subprocess.run([binary, db, "--format", "json", "--limit", "0", *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{binary} {db} {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def check(binary, work, fixture):
    reference = json.loads(fixture.with_suffix(".reference.json").read_text())
    db = work / fixture.name
    shutil.copyfile(fixture, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    default = scan(binary, db)
    if default["run_id"] != reference["latest_run"]:
        sys.exit(f"{fixture.name}: default run {default['run_id']}, ferret says {reference['latest_run']}")
    for run_id, want in reference["runs"].items():
        got = scan(binary, db, "--run", run_id)
        if got["spans"] != want["span_count"]:
            sys.exit(f"{fixture.name} {run_id}: {got['spans']} spans, ferret says {want['span_count']}")
        rows = {f["name"]: f for f in got["functions"]}
        if set(rows) != set(want["stats"]):
            sys.exit(f"{fixture.name} {run_id}: names differ from ferret's")
        for name, w in want["stats"].items():
            g = rows[name]
            same = (g["count"] == w["count"] and g["error_count"] == w["error_count"]
                    and math.isclose(g["total_duration"], w["total_duration"], rel_tol=1e-9, abs_tol=1e-12))
            if not same:
                sys.exit(f"{fixture.name} {run_id} {name}: {g} differs from ferret's {w}")
    if hashlib.sha256(db.read_bytes()).hexdigest() != before:
        sys.exit(f"{fixture.name}: the database was written to")
    print(f"{fixture.name}: {len(reference['runs'])} runs equal ferret-io's; the database unchanged")


def main():
    bin_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
    for fixture in sys.argv[3:]:
        check(bin_dir / "ferret-scan", work, Path(fixture))


if __name__ == "__main__":
    main()

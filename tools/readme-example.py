#!/usr/bin/env python3
"""Makes the README's comparison example: a service's trace of two runs as JSON lines, converted
with ferret-convert and compared with ferret-scan --baseline; prints the command and its output.

Five functions of a web service (http.handle calling auth.check, cache.get, db.query and render
in turn), log-normal durations (sigma 0.5), 1% errors; in the second run ("today") db.query is
made 25% slower, and http.handle, which holds it, a little slower with it. The seed is fixed, so
the output is the same every time: `tools/readme-example.py [DIR]` (default target/readme-example;
the binaries from FERRET_BIN, default target/release). A test checks that the README quotes it.
"""

import json
import os
import random
import subprocess
import sys

# name -> (median seconds, calls per request); http.handle is the root.
CALLEES = [("auth.check", 0.0006, 1), ("cache.get", 0.0002, 2), ("db.query", 0.0045, 2), ("render", 0.0012, 1)]
REQUESTS = 1500
SLOWED, FACTOR = "db.query", 1.25


def spans(rng, run, slowed):
    """Yield the run's spans as dicts, children before their parent as ferret-io flushes them."""
    clock = 1.7e9 if run == "yesterday" else 1.7e9 + 86400
    for request in range(REQUESTS):
        root_id = f"{run[:1]}{request:015x}0000000000000000"
        start, children = clock, []
        at = start + 0.0002
        for name, median, calls in CALLEES:
            for call in range(calls):
                scale = FACTOR if name == slowed else 1.0
                duration = rng.lognormvariate(0.0, 0.5) * median * scale
                children.append((f"{root_id[:16]}{len(children) + 1:016x}", name, at, duration))
                at += duration + 0.0001
        for span_id, name, begin, duration in children:
            yield record(span_id, root_id, run, name, begin, duration, rng)
        yield record(root_id, None, run, "http.handle", start, at - start, rng)
        clock = at + 0.01


def record(span_id, parent_id, run, name, start, duration, rng):
    error = rng.random() < 0.01
    tags = {"error": "timeout", "error_type": "TimeoutError"} if error else {}
    return {
        "span_id": span_id,
        "parent_id": parent_id,
        "run_id": run,
        "name": name,
        "start_time": start,
        "end_time": start + duration,
        "duration": duration,
        "tags": tags,
        "status": "error" if error else "ok",
    }


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "target/readme-example"
    os.makedirs(out_dir, exist_ok=True)
    lines = os.path.join(out_dir, "svc.jsonl")
    rng = random.Random(2026)
    with open(lines, "w") as f:
        for run, slowed in (("yesterday", None), ("today", SLOWED)):
            for span in spans(rng, run, slowed):
                f.write(json.dumps(span) + "\n")
    release = os.path.abspath(os.environ.get("FERRET_BIN", "target/release"))
    convert = [os.path.join(release, "ferret-convert"), "svc.jsonl", "-o", "svc.ferret", "--force", "--quiet"]
    subprocess.run(convert, check=True, cwd=out_dir)
    command = ["ferret-scan", "svc.ferret", "--baseline", "yesterday", "--run", "today"]
    scan = [os.path.join(release, command[0])] + command[1:]
    result = subprocess.run(scan, check=True, capture_output=True, text=True, cwd=out_dir)
    print("$ " + " ".join(command))
    print(result.stdout, end="")


if __name__ == "__main__":
    main()

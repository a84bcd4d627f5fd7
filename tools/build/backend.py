"""The wheel's PEP 517 backend: maturin's, after ferret's two binaries are built and staged.

maturin builds one crate (here the Python module, crates/python); a wheel's `<name>.data/scripts`
files are installed on the environment's PATH, so the binaries of crates/cli are built with
cargo and copied (stripped, when `strip` is at hand) into target/wheel-data/scripts, which
pyproject.toml names as the wheel's data. `python3 tools/build/backend.py` stages them alone
(tools/wheel.sh, before `maturin build`).
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = ("ferret-scan", "ferret-convert")


def stage_binaries():
    """Builds the release binaries and copies them into target/wheel-data/scripts."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "ferret-cli", "--bins"],
        cwd=ROOT,
        check=True,
        stdout=sys.stderr,
    )
    scripts = os.path.join(ROOT, "target", "wheel-data", "scripts")
    shutil.rmtree(scripts, ignore_errors=True)
    os.makedirs(scripts)
    for name in BINARIES:
        staged = os.path.join(scripts, name)
        shutil.copy2(os.path.join(ROOT, "target", "release", name), staged)
        # The release profile keeps line tables for profiling; an installed tool needs none.
        if shutil.which("strip"):
            subprocess.run(["strip", staged], check=True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    stage_binaries()
    import maturin

    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def __getattr__(name):
    # Every other hook (sdist, metadata, editable installs) is maturin's own.
    import maturin

    return getattr(maturin, name)


if __name__ == "__main__":
    stage_binaries()

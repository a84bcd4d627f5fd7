//! `ferret-scan`: per-function statistics, call trees, flame graphs, comparisons and exports of
//! ferret traces. The modes live in the library (`ferret_cli::scan`), shared with the Python
//! module, which asks the same questions without a process.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferret_cli::scan::main()
}

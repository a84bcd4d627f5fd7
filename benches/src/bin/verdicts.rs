//! How well the comparison's verdicts are calibrated (`make bench-verdicts`): pairs of generated
//! runs whose truth is known (`ferret_report::calibration`), the figures the README quotes.
//!
//! Usage: `verdicts [PAIRS_SLOWED] [PAIRS_EQUAL]` (defaults 100 and 400).

use anyhow::{Context, Result};
use ferret_report::calibration::{equal_pairs_with_alarm, slowed_pairs};
use ferret_report::comparison::CompareOptions;

/// Functions per generated program when one is slowed, and when none is.
const FUNCTIONS_SLOWED: usize = 60;
const FUNCTIONS_EQUAL: usize = 30;

fn count_arg(args: &[String], at: usize, default: usize) -> Result<usize> {
    args.get(at)
        .map(|a| a.parse().with_context(|| format!("not a count: {a:?}")))
        .unwrap_or(Ok(default))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let slowed = count_arg(&args, 0, 100)?;
    let equal = count_arg(&args, 1, 400)?;

    let got = slowed_pairs(slowed, FUNCTIONS_SLOWED, 0x5eed);
    println!(
        "slowed pairs ({FUNCTIONS_SLOWED} functions, one 20-30% slower, default options): \
         {pairs} pairs; slowed function ranked first and called slower: {found}; \
         its 95% interval held the true shift: {covered}; \
         unchanged functions called changed: {fa} of {un} ({rate:.2}%)",
        pairs = got.pairs,
        found = got.found,
        covered = got.covered,
        fa = got.false_alarms,
        un = got.unchanged,
        rate = 100.0 * got.false_alarms as f64 / got.unchanged.max(1) as f64,
    );
    for (label, min_effect) in [
        ("no minimum effect", 0.0),
        ("default 5% minimum effect", 0.05),
    ] {
        let options = CompareOptions {
            min_effect,
            fdr: 0.05,
        };
        let alarms = equal_pairs_with_alarm(equal, FUNCTIONS_EQUAL, options, 0xa1a2);
        println!(
            "equal pairs ({FUNCTIONS_EQUAL} functions, nothing changed, --fdr 5%, {label}): \
             {alarms} of {equal} raised any alarm ({rate:.1}%)",
            rate = 100.0 * alarms as f64 / equal.max(1) as f64,
        );
    }
    Ok(())
}

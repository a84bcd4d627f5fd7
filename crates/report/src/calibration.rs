//! How well the comparison's verdicts are calibrated, measured on generated pairs of runs whose
//! truth is known: programs of functions with log-normal durations, one made slower by a known
//! factor, or none. `make bench-verdicts` prints these over 100 and 400 pairs (the README quotes
//! it); the tests run a few pairs and assert with binomial slack.

use ferret_scan::stats::ChunkStats;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use crate::comparison::{Change, CompareOptions, ComparisonReport, Side};

/// The spread of each function's durations: log-normal with this sigma (a p99 about 3.2× the
/// median, as request handlers show).
pub const SIGMA: f64 = 0.5;

/// A program of `functions` functions: each a median duration (0.5-20 ms, log-uniform) and a
/// call count that gives it 10-20 s of total time.
pub fn program(functions: usize, rng: &mut StdRng) -> Vec<(f64, usize)> {
    (0..functions)
        .map(|_| {
            let median = 0.0005 * 40f64.powf(rng.gen::<f64>());
            let total = 10.0 + 10.0 * rng.gen::<f64>();
            (median, (total / (median * 1.13)) as usize)
        })
        .collect()
}

/// One run of `program`: every count jittered by up to 3% (a service's load varies), each
/// function's median multiplied by its `factor`, 1% of spans errors.
pub fn run(program: &[(f64, usize)], factor: &[f64], rng: &mut StdRng) -> ChunkStats {
    let mut stats = ChunkStats::new(program.len());
    for (name, &(median, calls)) in program.iter().enumerate() {
        let calls = (calls as f64 * (0.97 + 0.06 * rng.gen::<f64>())) as usize;
        let noise = LogNormal::new((median * factor[name]).ln(), SIGMA).expect("a valid sigma");
        for _ in 0..calls {
            let d = noise.sample(rng);
            stats.add_span(name, Some(d), rng.gen::<f64>() < 0.01);
        }
    }
    stats
}

/// The comparison of two runs of a generated program, functions named `f0`, `f1`, ...
pub fn compare(
    base: &ChunkStats,
    target: &ChunkStats,
    options: CompareOptions,
) -> ComparisonReport {
    let name_of = |id: u32| format!("f{id}");
    let side = |run_id: &str, stats| Side {
        run_id: run_id.to_string(),
        stats,
        name_of: &name_of,
    };
    ComparisonReport::build(
        side("base", base),
        side("target", target),
        options,
        "total",
        0,
    )
}

/// What pairs with one function slowed showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowedPairs {
    /// Pairs compared.
    pub pairs: usize,
    /// Pairs whose first row (by change of total) is the slowed function, called slower.
    pub found: usize,
    /// Pairs whose 95% interval of the slowed function's shift held the true shift.
    pub covered: usize,
    /// Unchanged functions compared, and those called slower or faster.
    pub unchanged: usize,
    /// Of those, called slower or faster.
    pub false_alarms: usize,
}

/// `pairs` pairs of runs of programs of `functions` functions, one made 20-30% slower in the
/// second run, compared with the default options; `seed` makes it repeatable.
pub fn slowed_pairs(pairs: usize, functions: usize, seed: u64) -> SlowedPairs {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = SlowedPairs {
        pairs,
        ..SlowedPairs::default()
    };
    for _ in 0..pairs {
        let program = program(functions, &mut rng);
        let slowed = rng.gen_range(0..functions);
        let mut factor = vec![1.0; functions];
        factor[slowed] = 1.2 + 0.1 * rng.gen::<f64>();
        let base = run(&program, &vec![1.0; functions], &mut rng);
        let target = run(&program, &factor, &mut rng);
        let report = compare(&base, &target, CompareOptions::default());
        let first = &report.functions[0];
        out.found +=
            usize::from(first.name == format!("f{slowed}") && first.change == Change::Slower);
        let truth = factor[slowed] - 1.0;
        let shift = report
            .functions
            .iter()
            .find(|f| f.name == format!("f{slowed}"))
            .and_then(|f| f.shift);
        let held = shift
            .and_then(|s| s.interval)
            .is_some_and(|[low, high]| low < truth && truth < high);
        out.covered += usize::from(held);
        out.unchanged += functions - 1;
        out.false_alarms += report
            .functions
            .iter()
            .filter(|f| f.name != format!("f{slowed}") && f.change != Change::Same)
            .count();
    }
    out
}

/// Of `pairs` pairs of equal runs (nothing changed) of programs of `functions` functions,
/// compared with `options`, how many raised any alarm (a function called slower or faster).
pub fn equal_pairs_with_alarm(
    pairs: usize,
    functions: usize,
    options: CompareOptions,
    seed: u64,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..pairs)
        .filter(|_| {
            let program = program(functions, &mut rng);
            let same = vec![1.0; functions];
            let (base, target) = (
                run(&program, &same, &mut rng),
                run(&program, &same, &mut rng),
            );
            let report = compare(&base, &target, options);
            report.functions.iter().any(|f| f.change != Change::Same)
        })
        .count()
}

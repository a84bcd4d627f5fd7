//! The stats pass against the physical ceiling, measured in interleaved pairs: a ceiling read,
//! then a stats pass without checksums, then one with, over and over, and the median of each
//! pair's ratio. On a machine whose speed swings within seconds, criterion's separate
//! measurements of the two can land in different phases; a pair cannot.
//!
//! `scan-vs-ceiling FILE [PAIRS]` scans the file's default run; `scan-vs-ceiling --synthetic N
//! [PAIRS]` first writes the criterion bench's synthetic file of N records. Prints one line:
//! `<records> <median unverified ratio> <median verified ratio> <best ceiling GiB/s>`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use ferret_format::SpanFile;
use ferret_scan::{default_run, scan_stats, ScanOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir()?;
    let (path, rest) = match args.as_slice() {
        [flag, n, rest @ ..] if flag == "--synthetic" => {
            let path = dir.path().join("synthetic.ferret");
            ferret_benches::write_trace(&path, n.parse().context("record count")?, 200);
            (path, rest)
        }
        [file, rest @ ..] => (PathBuf::from(file), rest),
        [] => bail!("usage: scan-vs-ceiling FILE|--synthetic N [PAIRS]"),
    };
    let pairs: usize = rest.first().map_or(Ok(30), |p| p.parse())?;
    let file = SpanFile::open(&path)?;
    let run = default_run(&file)?;
    let bytes = file.record_count() as f64 * 64.0;
    let timed = |f: &dyn Fn() -> anyhow::Result<u64>| {
        let started = Instant::now();
        std::hint::black_box(f()?);
        Ok::<_, anyhow::Error>(started.elapsed().as_secs_f64())
    };
    let file = &file;
    let stats = |verify: bool| {
        let opts = ScanOptions {
            verify,
            ..ScanOptions::default()
        };
        move || Ok(scan_stats(file, run, &opts, &|_, _| {})?.spans())
    };
    let (unverified, verified) = (stats(false), stats(true));
    let (mut ratios, mut checked, mut best) = (Vec::new(), Vec::new(), f64::MAX);
    for _ in 0..pairs {
        let ceiling = timed(&|| Ok(ferret_benches::ceiling_read(file)))?;
        best = best.min(ceiling);
        ratios.push(ceiling / timed(&unverified)?);
        checked.push(ceiling / timed(&verified)?);
    }
    println!(
        "{} {:.3} {:.3} {:.2}",
        file.record_count(),
        median(&mut ratios),
        median(&mut checked),
        bytes / best / f64::from(1u32 << 30)
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

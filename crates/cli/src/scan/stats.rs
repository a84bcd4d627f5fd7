//! The default answer: per-function statistics of the population (its runs merged by name), as
//! ferret's table, JSON or CSV, or broken down by file or run (`--by`).

use std::io::Write;

use anyhow::Context;
use ferret_report::functions::GroupedReport;
use ferret_report::StatsReport;
use ferret_scan::names::NameUnion;
use ferret_scan::stats::ChunkStats;
use ferret_scan::{scan_stats, ScanOptions};
use rayon::prelude::*;

use crate::scan::select::{Member, Selection};
use crate::scan::{print_json, Asked, By, Format};

/// The statistics of `members` merged by name: each run scanned (in parallel, one pool), its
/// name ids mapped into `names`, the union of every file's names.
pub fn merged(
    q: &Asked,
    chosen: &Selection,
    members: &[Member],
    names: &(NameUnion, Vec<Vec<u32>>),
) -> anyhow::Result<ChunkStats> {
    let (union, maps) = names;
    let opts = ScanOptions {
        verify: !q.args.no_verify,
        filter: chosen.filter.clone(),
        ..ScanOptions::default()
    };
    let empty = || ChunkStats::new(union.len());
    members
        .par_iter()
        .try_fold(empty, |merged, m| {
            let f = &q.files[m.file];
            let stats = scan_stats(&f.file, m.run, &opts, &f.release()).with_context(|| f.ctx())?;
            anyhow::Ok(merged.merge_renamed(stats, &maps[m.file]))
        })
        .try_reduce(empty, |a, b| Ok(a.merge(b)))
}

/// The union of the files' names, and each file's map into it.
pub fn name_union(q: &Asked) -> (NameUnion, Vec<Vec<u32>>) {
    let mut union = NameUnion::new();
    let maps = q.files.iter().map(|f| union.add(&f.file)).collect();
    (union, maps)
}

/// The population's functions, sorted by `--sort`, at most `limit` (0: all).
pub fn report(q: &Asked, chosen: &Selection, limit: usize) -> anyhow::Result<StatsReport> {
    let names = name_union(q);
    let stats = merged(q, chosen, &chosen.members, &names)?;
    Ok(build(q, chosen, &chosen.members, &stats, &names.0, limit))
}

/// The report of `stats`, the statistics of `members`.
fn build(
    q: &Asked,
    chosen: &Selection,
    members: &[Member],
    stats: &ChunkStats,
    names: &NameUnion,
    limit: usize,
) -> StatsReport {
    let run_id = match members {
        [m] => chosen.run_id(q, *m),
        _ => String::new(),
    };
    let name_of = |id| names.name(id).to_string();
    StatsReport::build(run_id, stats, name_of, &q.args.sort, limit)
}

/// The population broken down by file or run: a report per group, in the order given.
fn grouped(q: &Asked, chosen: &Selection, by: By) -> anyhow::Result<GroupedReport> {
    let names = name_union(q);
    let groups: Vec<(String, Vec<Member>)> = match by {
        By::File => chosen
            .files()
            .map(|file| {
                let members = chosen.members.iter().filter(|m| m.file == file).copied();
                (q.files[file].given.display().to_string(), members.collect())
            })
            .collect(),
        By::Run => chosen
            .members
            .iter()
            .map(|&m| (chosen.run_id(q, m), vec![m]))
            .collect(),
    };
    let mut reports = Vec::with_capacity(groups.len());
    for (key, members) in groups {
        let stats = merged(q, chosen, &members, &names)?;
        let report = build(q, chosen, &members, &stats, &names.0, q.args.limit);
        reports.push((key, report));
    }
    Ok(GroupedReport {
        by: match by {
            By::File => "file",
            By::Run => "run",
        },
        groups: reports,
    })
}

/// The table asked for: the population's, or broken down by `--by`.
enum Table {
    Whole(StatsReport),
    Grouped(GroupedReport),
}

impl Table {
    fn spans(&self) -> u64 {
        match self {
            Table::Whole(r) => r.spans,
            Table::Grouped(g) => g.groups.iter().map(|(_, r)| r.spans).sum(),
        }
    }

    fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Table::Whole(r) => r.write_table(out),
            Table::Grouped(g) => g.write_table(out),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Table::Whole(r) => r.to_json(),
            Table::Grouped(g) => g.to_json(),
        }
    }

    fn write_csv(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Table::Whole(r) => r.write_csv(out),
            Table::Grouped(g) => g.write_csv(out),
        }
    }
}

/// Scans the population and prints its functions (by group with `--by`).
pub fn write_stats(q: &Asked, chosen: Selection) -> anyhow::Result<()> {
    let table = match q.args.by {
        Some(by) => Table::Grouped(grouped(q, &chosen, by)?),
        None => Table::Whole(report(q, &chosen, q.args.limit)?),
    };
    let mut out = q.args.sink.out();
    match q.args.format {
        Format::Table => {
            writeln!(
                out,
                "{} · {} spans of {} · {:.3} s",
                chosen.describe(q),
                table.spans(),
                records(q, &chosen),
                q.started.elapsed().as_secs_f64()
            )?;
            table.write_table(&mut out)?;
        }
        Format::Json => print_json(&chosen.with_population(q, table.to_json()), &mut out)?,
        Format::Csv => table.write_csv(&mut out)?,
    }
    Ok(out.flush()?)
}

/// The records of the files that hold the population's runs.
pub fn records(q: &Asked, chosen: &Selection) -> u64 {
    chosen.files().map(|f| q.files[f].file.record_count()).sum()
}

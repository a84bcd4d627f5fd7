//! The population's spans as groups of rows, for the Python module's Arrow batches: the files
//! opened and the population chosen as every mode does, then each file's chosen runs through
//! ferret-parquet's [`FileRows`] (the Parquet export's rows), one group at a time, each group's
//! records handed back to the page cache once read, so memory holds one group.

use std::sync::Arc;
use std::time::Instant;

use ferret_parquet::{FileRows, RowGroup, ValueTable};
use ferret_scan::pass::hand_over;

use crate::scan::parquet::in_file;
use crate::scan::select::{self, Selection};
use crate::scan::source::{self, Opened, RecordFile};
use crate::scan::{asking, in_process, runs_asked, window};

/// The spans a question selects, a group of rows at a time.
pub struct SpanGroups {
    files: Vec<Opened>,
    chosen: Selection,
    rows_per_group: usize,
    /// The files holding chosen runs, in the order given, and the next of them to read.
    order: Vec<usize>,
    next_file: usize,
    /// The file being read, its rows and its next group.
    current: Option<(usize, FileRows, usize)>,
    /// Keeps a temporary sidecar (`--no-sidecar`) for as long as its file is read.
    _records: Vec<RecordFile>,
}

/// The spans `ferret-scan ARGS --to-parquet` would write (ARGS without it), in groups of about
/// `rows_per_group` rows.
pub fn spans<I, T>(args: I, rows_per_group: usize) -> anyhow::Result<SpanGroups>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = in_process(args)?;
    let started = Instant::now();
    let records = source::record_files(&args.files, &args.namespace, !args.no_sidecar, false)?;
    source::say_notes(&records);
    let files = source::open_all(&records, false)?;
    let chosen = asking(&args, &files, started, |q| {
        select::select(q, runs_asked(&args), window(&args), true)
    })?;
    Ok(SpanGroups {
        order: chosen.files().collect(),
        files,
        chosen,
        rows_per_group,
        next_file: 0,
        current: None,
        _records: records,
    })
}

impl SpanGroups {
    /// The next group of rows that the filters left some in, with the values its ids point
    /// into; `None` after the last.
    pub fn next_group(&mut self) -> anyhow::Result<Option<(RowGroup, Arc<ValueTable>)>> {
        loop {
            if let Some((file, rows, next)) = &mut self.current {
                let f = &self.files[*file];
                if let Some(range) = rows.groups().get(*next) {
                    *next += 1;
                    let group = rows.build(&f.file, range).map_err(|e| in_file(e, f))?;
                    // What the group read leaves our resident set (the page cache keeps it).
                    rows.release_before(range.records.end);
                    hand_over(&f.file, range.records.clone(), &f.release());
                    if !group.is_empty() {
                        return Ok(Some((group, Arc::clone(rows.values()))));
                    }
                    continue;
                }
            }
            let Some(&file) = self.order.get(self.next_file) else {
                return Ok(None);
            };
            self.next_file += 1;
            let f = &self.files[file];
            let rows = FileRows::new(
                &f.file,
                &self.chosen.chosen_runs(file),
                &self.chosen.filter,
                self.rows_per_group,
                &source::scratch_dir(&f.path),
                &f.release(),
            )
            .map_err(|e| in_file(e, f))?;
            self.current = Some((file, rows, 0));
        }
    }
}

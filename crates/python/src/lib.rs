//! `ferret_scan._native`: the Rust side of the Python module. Every question is asked of
//! `ferret_cli::scan` with the command line's own arguments, so Python gets the numbers of the
//! one implementation; rows become Arrow record batches here, handed to Python through the
//! Arrow PyCapsule interface (pyo3-arrow). The Python side (`python/ferret_scan`) turns keyword
//! arguments into those arguments and wraps the answers.

mod batches;
mod errors;
mod rows;

use pyo3::prelude::*;

/// Answers `ferret-scan ARGS --format json` with the GIL released: the JSON text of the
/// answer, and when `rows` names an array of objects in it, that array as an Arrow table.
#[pyfunction]
#[pyo3(signature = (args, rows=None))]
fn answer(
    py: Python<'_>,
    args: Vec<std::ffi::OsString>,
    rows: Option<String>,
) -> PyResult<(String, Option<pyo3_arrow::PyTable>)> {
    let answered = py.detach(|| {
        let doc = ferret_cli::scan::answer_json(&args)?;
        let table = rows
            .as_deref()
            .map(|key| rows::table_of(&doc, key))
            .transpose()?;
        anyhow::Ok((serde_json::to_string(&doc)?, table))
    });
    let (text, table) = answered.map_err(errors::to_python)?;
    let table = table
        .map(|(batches, schema)| pyo3_arrow::PyTable::try_new(batches, schema))
        .transpose()?;
    Ok((text, table))
}

/// The spans `ferret-scan ARGS --to-parquet` would write, as a one-time stream of Arrow
/// record batches of about `batch_rows` rows, each made when the consumer asks for it. The
/// files are opened and the population chosen here (errors raise now, with the GIL released).
#[pyfunction]
fn spans(
    py: Python<'_>,
    args: Vec<std::ffi::OsString>,
    batch_rows: usize,
) -> PyResult<pyo3_arrow::PyRecordBatchReader> {
    let groups = py
        .detach(|| ferret_cli::scan::spans::spans(&args, batch_rows))
        .map_err(errors::to_python)?;
    Ok(pyo3_arrow::PyRecordBatchReader::new(Box::new(
        batches::SpanBatches::new(groups),
    )))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(answer, m)?)?;
    m.add_function(wrap_pyfunction!(spans, m)?)?;
    errors::register(m)?;
    Ok(())
}

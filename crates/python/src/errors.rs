//! ferret's errors as Python exceptions: `FerretError`, and under it `InputError` (a file
//! missing or not a trace, an unknown run, a bad argument) and `DamageError` (a record file
//! that fails its checks). The message is the line `ferret-scan` prints after its name.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    ferret_scan,
    FerretError,
    PyException,
    "An error of ferret's, with the message ferret-scan prints for it."
);
create_exception!(
    ferret_scan,
    InputError,
    FerretError,
    "Bad input: a file missing or not a trace, an unknown run, a bad argument."
);
create_exception!(
    ferret_scan,
    DamageError,
    FerretError,
    "A record file failed its checks (checksums, structure): convert the trace anew."
);

/// Adds the exceptions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FerretError", py.get_type::<FerretError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("DamageError", py.get_type::<DamageError>())?;
    Ok(())
}

/// The Python exception of an error: its class by what failed, its message the CLI's line.
pub fn to_python(e: anyhow::Error) -> PyErr {
    let message = ferret_cli::one_line(&e);
    if ferret_cli::is_damage(&e) {
        DamageError::new_err(message)
    } else {
        InputError::new_err(message)
    }
}

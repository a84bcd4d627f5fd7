//! End-to-end tests: the real `ferret-convert` and `ferret-scan` executables on temp files,
//! checked against what ferret-io's own analyzer computed for the same traces
//! (`testdata/fixtures/*.reference.json`, made by `make fixtures`). One test binary, a module
//! per topic (as ripgrep's `tests/tests.rs`); the shared helpers and macros live in `util`.

#[macro_use]
mod util;

mod bad_input;
mod compare;
mod convert;
mod flame;
mod html;
mod live;
mod oddities;
mod parquet;
mod population;
mod self_time;
mod sidecar;
mod table;
mod timeline;
mod trees;
mod watch;
mod writers;

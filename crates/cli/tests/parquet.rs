//! `--to-parquet`: rows equal to ferret-io's trees and the scan's totals, filters, and bad
//! outputs.

use crate::util::*;

#[test]
fn parquet_export_equals_ferret_trees_and_scan_totals() {
    for db in ["beaver1.db", "beaver2.db", "generated1.db"] {
        for_each_way(db, check_parquet_against_ferret);
    }
}

#[test]
fn parquet_export_filters_replaces_whole_and_names_bad_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let out = dir.path().join("errors.parquet");
    std::fs::write(&out, "an older export").unwrap();
    ok!(run!(
        "ferret-scan",
        &file,
        "--all-runs",
        "--to-parquet",
        &out,
        "--status",
        "error"
    ));
    let rows = parquet_rows(&out);
    assert!(!rows.is_empty(), "the fixture has errors");
    assert!(rows.iter().all(|r| r["status"] != "ok"), "only errors");
    // Nothing is left beside the output but the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // One run by default: ferret's default run.
    ok!(run!("ferret-scan", &file, "--to-parquet", &out));
    let runs: std::collections::BTreeSet<String> = parquet_rows(&out)
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        vec![reference("beaver1.db")["latest_run"].as_str().unwrap()]
    );
    let missing = dir.path().join("no-such-dir/out.parquet");
    fails!(
        run!("ferret-scan", &file, "--to-parquet", &missing),
        "no-such-dir"
    );
    // A damaged record block is named, and no output appears.
    let mut bytes = std::fs::read(&file).unwrap();
    let first_record = 2 * ferret_format::HEADER_SLOT_SIZE as usize + 128;
    bytes[first_record + 20] ^= 0x40;
    let damaged = dir.path().join("damaged.ferret");
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = dir.path().join("fresh.parquet");
    fails!(
        run!(
            "ferret-scan",
            &damaged,
            "--all-runs",
            "--to-parquet",
            &fresh,
            "--no-verify"
        ),
        "damaged.ferret: checksum"
    );
    assert!(!fresh.exists());
    // --all-runs and --run ask for different runs: a usage error.
    assert_eq!(
        run!("ferret-scan", &file, "--all-runs", "--run", "x")
            .status
            .code(),
        Some(2)
    );
}

//! Bad input and output: one-line errors naming the file and what to do.

use crate::util::*;

#[test]
fn help_says_what_each_tool_does() {
    let convert = ok!(run!("ferret-convert", "--help"));
    assert!(convert.starts_with("Stream a ferret-io trace"), "{convert}");
    let scan = ok!(run!("ferret-scan", "--help"));
    assert!(scan.starts_with("Per-function statistics"), "{scan}");
}

/// A damaged page of a finished database's log table (read from the pages themselves) stops
/// the conversion with one line naming the page, and leaves no output behind.
#[test]
fn a_damaged_table_page_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("damaged.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let root: u32 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'beaver_logs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = |n: u32| (n as usize - 1) * 4096;
    assert_eq!(
        bytes[page(root)],
        0x05,
        "the log table's root is an interior page"
    );
    // The first child of the root, a leaf, gets a page type no B-tree page has.
    let cell = page(root)
        + usize::from(u16::from_be_bytes([
            bytes[page(root) + 12],
            bytes[page(root) + 13],
        ]));
    let leaf = u32::from_be_bytes(bytes[cell..cell + 4].try_into().unwrap());
    assert_eq!(bytes[page(leaf)], 0x0d);
    bytes[page(leaf)] = 0x07;
    std::fs::write(&db, bytes).unwrap();
    let out = dir.path().join("out.ferret");
    fails!(
        run!("ferret-convert", &db, "-o", &out),
        "damaged.db",
        "database disk image is malformed",
        &format!("page {leaf}: page type 0x07")
    );
    assert!(!out.exists());
}

#[test]
fn bad_inputs_and_outputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = dir.path().join("o.ferret");
    fails!(
        run!("ferret-convert", &text, "-o", &out),
        "notes.txt",
        "not a SQLite database"
    );
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            &out,
            "--namespace",
            "nope"
        ),
        "namespace \"nope\" not found",
        "\"other_ns\" (1 rows)"
    );
    // What the system says, once (each layer used to repeat its cause and the file).
    fails!(
        run!("ferret-convert", dir.path().join("missing.db"), "-o", &out),
        "missing.db: No such file"
    );
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            dir.path().join("no/such/dir/o.ferret")
        ),
        "o.ferret: No such file"
    );
    fails!(
        run!("ferret-convert", dir.path(), "-o", &out),
        "Is a directory"
    );
    fails!(
        run!("ferret-scan", dir.path().join("missing.ferret")),
        "missing.ferret: No such file"
    );
    // Never overwrite a file that is not ours; an existing ferret file needs --append or --force.
    fails!(
        run!("ferret-convert", fixture("beaver1.db"), "-o", &text),
        "not a ferret file"
    );
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "hello");
    ok!(run!(
        "ferret-convert",
        fixture("beaver1.db"),
        "-o",
        &out,
        "--quiet"
    ));
    fails!(
        run!("ferret-convert", fixture("beaver1.db"), "-o", &out),
        "--append",
        "--force"
    );
    // The scanner names the file and what is wrong.
    fails!(
        run!("ferret-scan", &text),
        "notes.txt",
        "not a ferret span file",
        "a SQLite database or a JSON lines file"
    );
    fails!(
        run!("ferret-scan", &out, "--run", "zzz"),
        "no run \"zzz\"",
        "closest"
    );
    let mut bytes = std::fs::read(&out).unwrap();
    let at = 8192 + 128 + 64 * 10 + 20;
    bytes[at] ^= 0x10;
    let bad = dir.path().join("flipped.ferret");
    std::fs::write(&bad, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &bad, "--verify"),
        "flipped.ferret",
        "checksum mismatch in records 0.."
    );
    fails!(run!("ferret-scan", &bad), "checksum mismatch");
    // A block is folded before its checksum is checked (while it is in cache): a damaged name
    // id (of a span in the default run) is still reported as the damage it is, and only
    // unchecked scans see the bad record.
    let mut bytes = std::fs::read(&out).unwrap();
    let name = 8192 + 128 + 64 * 120 + 48;
    bytes[name..name + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&bad, &bytes).unwrap();
    fails!(
        run!("ferret-scan", &bad),
        "checksum mismatch in records 0.."
    );
    fails!(
        run!("ferret-scan", &bad, "--no-verify"),
        "name id 4294967280 out of range"
    );
}

#[test]
fn a_rewritten_source_or_an_old_file_is_refused_with_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    std::fs::copy(fixture("beaver1.db"), &db).unwrap();
    let out = convert(&db, dir.path());
    // Another trace in the source's place: the row at the watermark is not the one converted.
    std::fs::copy(fixture("generated1.db"), &db).unwrap();
    fails!(
        run!("ferret-convert", &db, "-o", &out, "--append"),
        "the source changed since it was last converted",
        "--force"
    );
    // A version 1 file cannot take the late links an append needs.
    let v1 = dir.path().join("v1.ferret");
    std::fs::copy(golden("v1.ferret"), &v1).unwrap();
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            &v1,
            "--append"
        ),
        "format version 1 cannot be appended to",
        "--force"
    );
}

/// A symbolic link as the output is refused, dangling or not: a link planted in a shared
/// folder cannot redirect a write.
#[test]
fn a_symlinked_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.ferret");
    let link = dir.path().join("link.ferret");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let db = fixture("beaver1.db");
    fails!(
        run!("ferret-convert", &db, "-o", &link, "--quiet"),
        "symbolic link",
        "target.ferret"
    );
    assert!(!target.exists(), "nothing written through the link");
    ok!(run!("ferret-convert", &db, "-o", &target, "--quiet"));
    fails!(
        run!("ferret-convert", &db, "-o", &link, "--append", "--quiet"),
        "symbolic link"
    );
}

//! The physical ceiling for a scan: maps a file and reads every byte of it on all cores, as
//! plainly as possible (a wrapping sum of its 64-bit words). Prints `<bytes> <seconds>`.
//!
//! With `OFFSET LENGTH` after the file, only those bytes (rounded to 8-byte words) are read:
//! the floor of a question that reads that much of the file, such as one run's records.
//!
//! With `--checksums` before the file, the bytes are hashed instead, a record block's worth
//! (64 KiB) at a time with the format's checksum: the least `ferret-scan --verify` must do.

use std::time::Instant;

use ferret_format::{checksum, SpanRecord, BLOCK_RECORDS};
use rayon::prelude::*;

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mmap-ceiling [--checksums] FILE [OFFSET LENGTH]";
    let hashed = args.first().is_some_and(|a| a == "--checksums");
    if hashed {
        args.remove(0);
    }
    let path = args.first().expect(usage);
    let file = std::fs::File::open(path)?;
    // SAFETY: read-only map of a file this benchmark owns and nobody modifies while it runs.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let number = |i: usize| args[i].parse::<usize>().expect(usage);
    let (offset, length) = match args.len() {
        3 => (number(1) / 8 * 8, number(2)),
        _ => (0, map.len()),
    };
    let end = (offset + length).min(map.len()) / 8 * 8;
    let bytes = &map[offset.min(end)..end];
    let started = Instant::now();
    let sum = if hashed {
        let block = BLOCK_RECORDS * std::mem::size_of::<SpanRecord>();
        bytes
            .par_chunks(block)
            .map(checksum)
            .reduce(|| 0, u64::wrapping_add)
    } else {
        let words: &[u64] = bytemuck::cast_slice(bytes);
        words
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
            .reduce(|| 0, u64::wrapping_add)
    };
    let seconds = started.elapsed().as_secs_f64();
    println!("{} {seconds:.6} {}", bytes.len(), sum % 7);
    Ok(())
}

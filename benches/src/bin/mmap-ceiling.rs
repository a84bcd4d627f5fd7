//! The physical ceiling for a scan: maps a file and reads every byte of it on all cores, as
//! plainly as possible (a wrapping sum of its 64-bit words). Prints `<bytes> <seconds>`.
//!
//! With `OFFSET LENGTH` after the file, only those bytes (rounded to 8-byte words) are read:
//! the floor of a question that reads that much of the file, such as one run's records.

use std::time::Instant;

use rayon::prelude::*;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mmap-ceiling FILE [OFFSET LENGTH]";
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
    let words: &[u64] = bytemuck::cast_slice(&map[offset.min(end)..end]);
    let started = Instant::now();
    let sum = words
        .par_chunks(1 << 16)
        .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
        .reduce(|| 0, u64::wrapping_add);
    let seconds = started.elapsed().as_secs_f64();
    println!("{} {seconds:.6} {}", words.len() * 8, sum % 7);
    Ok(())
}

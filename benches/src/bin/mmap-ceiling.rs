//! The physical ceiling for a scan: maps a file and reads every byte of it on all cores, as
//! plainly as possible (a wrapping sum of its 64-bit words). Prints `<bytes> <seconds>`.

use std::time::Instant;

use rayon::prelude::*;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).expect("usage: mmap-ceiling FILE");
    let file = std::fs::File::open(&path)?;
    // SAFETY: read-only map of a file this benchmark owns and nobody modifies while it runs.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let words: &[u64] = bytemuck::cast_slice(&map[..map.len() / 8 * 8]);
    let started = Instant::now();
    let sum = words
        .par_chunks(1 << 16)
        .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
        .reduce(|| 0, u64::wrapping_add);
    let seconds = started.elapsed().as_secs_f64();
    println!("{} {seconds:.6} {}", map.len(), sum % 7);
    Ok(())
}

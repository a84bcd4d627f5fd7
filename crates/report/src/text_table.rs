//! The text tables of every report: a header, a rule, then rows, each column padded to its
//! widest cell (by display width, so names in any script line up).

use std::borrow::Cow;
use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

/// Writes `rows` under `header`: the columns in `left` aligned left, the others right, two
/// spaces apart. `paint(row, column, padded)` may wrap a padded cell (in colour) after its
/// width is measured; `row` is the row's index.
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    left: &[usize],
    rows: &[Vec<String>],
    paint: impl Fn(usize, usize, String) -> String,
) -> io::Result<()> {
    // A cell is printed with its control characters escaped: a name holding a newline keeps
    // its row.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].width())
                .chain([header[i].width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String], row: Option<usize>| -> String {
        let padded = cells.iter().enumerate().map(|(i, c)| {
            let pad = " ".repeat(widths[i] - c.width());
            let cell = match left.contains(&i) {
                true => format!("{c}{pad}"),
                false => format!("{pad}{c}"),
            };
            match row {
                Some(row) => paint(row, i, cell),
                None => cell,
            }
        });
        padded.collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", line(&head, None))?;
    let rule = widths.iter().sum::<usize>() + 2 * (widths.len().max(1) - 1);
    writeln!(out, "{}", "-".repeat(rule))?;
    for (i, r) in rows.iter().enumerate() {
        writeln!(out, "{}", line(r, Some(i)))?;
    }
    Ok(())
}

/// `s` with its control characters escaped (`\n`, `\r`, `\t`, else `\u{1b}`), so that a name
/// or tag holding them stays on its line and in its column of a text output.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

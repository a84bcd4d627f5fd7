//! The progress bar of a conversion on a terminal (`ferret-convert`, and `ferret-scan`'s first
//! call on a big trace): rows done of the expected total, rate and ETA, or a row counter when
//! the total is unknown (stdin).

use std::fmt::Write;
use std::io::IsTerminal;

/// A conversion's progress bar.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar when `wanted` and stderr is a terminal; none otherwise.
    pub fn on_terminal(wanted: bool) -> Option<Progress> {
        (wanted && std::io::stderr().is_terminal()).then(|| Progress {
            bar: indicatif::ProgressBar::no_length(),
        })
    }

    /// Shows `done` rows of about `total` (0: unknown), choosing the bar's style on the first
    /// call.
    pub fn show(progress: &Option<Progress>, done: u64, total: u64) {
        let Some(Progress { bar }) = progress else {
            return;
        };
        let first = bar.position() == 0 && bar.length().is_none();
        if first {
            bar.set_style(if total > 0 {
                // `wide_bar` fills what the counters leave: a fixed width wrapped on narrow
                // terminals.
                style("{wide_bar} {human_pos}/{human_len} rows  {rate}  ETA {left}")
            } else {
                style("{spinner} {human_pos} rows  {rate}")
            });
        }
        if total > 0 {
            bar.set_length(total);
        } else {
            bar.tick();
        }
        bar.set_position(done);
    }

    /// Clears the bar.
    pub fn finish(progress: Option<Progress>) {
        if let Some(Progress { bar }) = progress {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn Write| {
                let _ = write!(w, "{:.2}M rows/s", average_rate(state) / 1e6);
            },
        )
        .with_key(
            "left",
            |state: &indicatif::ProgressState, w: &mut dyn Write| {
                let rate = average_rate(state);
                let left = state.len().unwrap_or(0).saturating_sub(state.pos()) as f64;
                let _ = if rate > 0.0 {
                    let secs = std::time::Duration::from_secs_f64(left / rate);
                    write!(w, "{:#}", indicatif::HumanDuration(secs))
                } else {
                    w.write_str("-")
                };
            },
        )
}

/// Rows per second since the start. indicatif's own rate is a moving estimate that starts near
/// zero and takes ~15 s to settle: longer than most conversions, so its ETA said minutes for a
/// conversion of seconds.
fn average_rate(state: &indicatif::ProgressState) -> f64 {
    state.pos() as f64 / state.elapsed().as_secs_f64().max(1e-3)
}

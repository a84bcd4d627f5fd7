//! The full-screen view of `--watch` on a terminal (ratatui over crossterm): a header (the
//! population, spans and errors per second, the latest span end and how far behind the clock it
//! is, the cost of the last refresh) over one row per function (calls/s, p50, p90, p99, error %,
//! total, share of time, ▲/▼ against the window before, and its p99 over the last refreshes).
//! Keys: `s` cycles the sort, `/` filters names by a regex, `p` pauses, `q` or Ctrl-C quits.
//! The terminal is restored on quit, on an error and on SIGTERM (the screen guard) and on a
//! panic (ratatui's hook).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferret_report::comparison::Change;
use ferret_report::live::LiveRow;
use ferret_report::timeline::sparkline;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};
use regex::Regex;

use crate::scan::watch::{refresh, Refresh};
use crate::scan::{local_time, Args};

/// The sort keys `s` cycles through, each descending (`name` ascending).
const SORTS: [&str; 5] = ["total", "rate", "p99", "errors", "name"];

/// Refreshes of each function's p99 kept for its trend.
const TREND: usize = 30;

/// The terminal in raw mode on the alternate screen, restored when dropped.
struct Screen(DefaultTerminal);

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What a key asks for.
#[derive(PartialEq, Eq)]
enum Asked {
    Nothing,
    Quit,
}

/// The view's state between refreshes.
struct View {
    last: Refresh,
    /// The last refresh's failure, shown until one succeeds.
    error: Option<String>,
    trends: HashMap<String, VecDeque<f64>>,
    sort: usize,
    filter: Option<Regex>,
    /// The filter being typed after `/`.
    typing: Option<String>,
    paused: bool,
}

/// Draws the view until `--count` refreshes, `q`, Ctrl-C, SIGTERM or SIGHUP.
pub fn show(args: &Args, first: Refresh) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut screen = Screen(ratatui::init());
    let mut view = View::new(first);
    let mut refreshes = 1u64;
    let mut next = Instant::now() + args.interval;
    loop {
        screen.0.draw(|frame| view.draw(frame, args))?;
        let counted = args.count.is_some_and(|count| refreshes >= count);
        if counted || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Woken at least every 100 ms, to see a signal.
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait.min(Duration::from_millis(100)))? {
            // Anything else (a resize) just redraws.
            if let Event::Key(key) = event::read()? {
                if key.kind == KeyEventKind::Press && view.key(key) == Asked::Quit {
                    return Ok(());
                }
            }
            continue;
        }
        if Instant::now() >= next {
            next += args.interval;
            if !view.paused {
                view.update(refresh(args, false));
                refreshes += 1;
            }
        }
    }
}

impl View {
    fn new(first: Refresh) -> View {
        let mut view = View {
            last: first,
            error: None,
            trends: HashMap::new(),
            sort: 0,
            filter: None,
            typing: None,
            paused: false,
        };
        view.remember_trends();
        view
    }

    /// Takes a refresh: its snapshot, or its failure (the last snapshot stays).
    fn update(&mut self, refreshed: anyhow::Result<Refresh>) {
        match refreshed {
            Ok(r) => {
                self.last = r;
                self.error = None;
                self.remember_trends();
            }
            Err(e) => self.error = Some(format!("{e:#} (retrying)")),
        }
    }

    fn remember_trends(&mut self) {
        for f in &self.last.snapshot.functions {
            let trend = self.trends.entry(f.row.name.clone()).or_default();
            if trend.len() == TREND {
                trend.pop_front();
            }
            trend.push_back(f.row.p99);
        }
    }

    /// Handles a key.
    fn key(&mut self, key: KeyEvent) -> Asked {
        if let Some(typed) = &mut self.typing {
            match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(typed);
                    self.typing = None;
                    match Regex::new(&text) {
                        Ok(_) if text.is_empty() => self.filter = None,
                        Ok(re) => self.filter = Some(re),
                        Err(e) => self.error = Some(format!("bad filter {text:?}: {e}")),
                    }
                }
                KeyCode::Esc => self.typing = None,
                KeyCode::Backspace => drop(typed.pop()),
                KeyCode::Char(c) => typed.push(c),
                _ => {}
            }
            return Asked::Nothing;
        }
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            _ if ctrl_c => return Asked::Quit,
            KeyCode::Char('q') => return Asked::Quit,
            KeyCode::Char('s') => self.sort = (self.sort + 1) % SORTS.len(),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('/') => {
                self.typing = Some(
                    self.filter
                        .as_ref()
                        .map_or(String::new(), |re| re.to_string()),
                )
            }
            _ => {}
        }
        Asked::Nothing
    }

    fn draw(&self, frame: &mut Frame, args: &Args) {
        let [header, table] =
            Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(frame.area());
        frame.render_widget(Paragraph::new(self.header(args)), header);
        frame.render_widget(self.table(), table);
    }

    /// The header's four lines.
    fn header(&self, args: &Args) -> Vec<Line<'static>> {
        let r = &self.last;
        let s = &r.snapshot;
        let w = s.window_seconds;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let paused = if self.paused { " · PAUSED" } else { "" };
        let title = format!(
            "ferret-scan --watch · {} · window {} · every {}{paused}",
            r.population,
            humantime::format_duration(args.window),
            humantime::format_duration(args.interval),
        );
        let rates = format!(
            "{:.1} spans/s · {:.2} errors/s · last span end {} ({:.1} s behind the clock) · refresh {:.0} ms",
            s.spans as f64 / w,
            s.errors as f64 / w,
            local_time(r.latest_end),
            (now - r.latest_end).max(0.0),
            r.cost.as_secs_f64() * 1000.0,
        );
        let said = match (&self.error, r.notes.first()) {
            (Some(e), _) => Line::styled(e.clone(), Style::new().fg(Color::Red)),
            (None, Some(note)) => Line::styled(note.clone(), Style::new().fg(Color::Yellow)),
            (None, None) => Line::default(),
        };
        let filter = match (&self.typing, &self.filter) {
            (Some(typed), _) => format!("/{typed}_"),
            (None, Some(re)) => re.to_string(),
            (None, None) => "-".to_string(),
        };
        let keys = format!(
            "s sort: {}   / filter: {filter}   p pause   q quit",
            SORTS[self.sort]
        );
        vec![
            Line::styled(title, Style::new().add_modifier(Modifier::BOLD)),
            Line::from(rates),
            said,
            Line::styled(keys, Style::new().add_modifier(Modifier::DIM)),
        ]
    }

    /// The functions shown: filtered by the name pattern, sorted by the key chosen.
    fn rows(&self) -> Vec<&LiveRow> {
        let mut rows: Vec<&LiveRow> = self
            .last
            .snapshot
            .functions
            .iter()
            .filter(|f| {
                self.filter
                    .as_ref()
                    .is_none_or(|re| re.is_match(&f.row.name))
            })
            .collect();
        let key = |f: &LiveRow| match SORTS[self.sort] {
            "rate" => f.rate,
            "p99" => f.row.p99,
            "errors" => f.row.error_rate,
            _ => f.row.total_duration,
        };
        match SORTS[self.sort] {
            "name" => rows.sort_by(|a, b| a.row.name.cmp(&b.row.name)),
            _ => rows.sort_by(|a, b| key(b).total_cmp(&key(a))),
        }
        rows
    }

    fn table(&self) -> Table<'_> {
        let ms = |s: f64| format!("{:.2}ms", s * 1000.0);
        let rows = self.rows().into_iter().map(|f| {
            let r = &f.row;
            let (sign, colour) = match f.change {
                Some(Change::Slower) => ("▲", Color::Red),
                Some(Change::Faster) => ("▼", Color::Green),
                _ => ("", Color::Reset),
            };
            let trend: Vec<f64> = self
                .trends
                .get(&r.name)
                .map_or_else(Vec::new, |t| t.iter().copied().collect());
            Row::new(vec![
                Cell::from(ferret_report::text_table::printable(&r.name).into_owned()),
                Cell::from(format!("{:.1}", f.rate)),
                Cell::from(ms(r.p50)),
                Cell::from(ms(r.p90)),
                Cell::from(ms(r.p99)),
                Cell::from(format!("{:.1}%", r.error_rate * 100.0)),
                Cell::from(format!("{:.3}s", r.total_duration)),
                Cell::from(format!("{:.1}%", f.share * 100.0)),
                Cell::from(Span::styled(sign, Style::new().fg(colour))),
                Cell::from(sparkline(&trend, TREND)),
            ])
        });
        let header = [
            "Function",
            "Calls/s",
            "p50",
            "p90",
            "p99",
            "Err %",
            "Total",
            "Share",
            "Δ",
            "p99 trend",
        ];
        let widths = [
            Constraint::Min(20),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(2),
            Constraint::Length(TREND as u16),
        ];
        Table::new(rows, widths)
            .header(Row::new(header.to_vec()).style(Style::new().add_modifier(Modifier::BOLD)))
    }
}

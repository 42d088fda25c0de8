//! `switchyard top`: every route of every host on the bus, live, refreshed
//! every `--interval` (like `vector top`); `--once` prints one frame as plain
//! text, for scripts and tests. Each refresh is a `status` request
//! ([`Control::statuses`]); what each column means is in `daemon::window` and
//! docs/OPERATIONS.md, "Seeing it live".

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize as _};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use tokio::sync::mpsc;

use super::control::{Control, NoStatus};
use crate::cli::{ConnArgs, ControlSeed};
use crate::reload::Status;

/// The table's columns.
const COLUMNS: [&str; 10] = ["HOST", "ROUTE", "PLUGIN", "IN FLIGHT", "MSG/S", "ERR%", "P50", "P99", "BREAKER", "PENDING"];
/// Which columns hold numbers (aligned right).
const NUMERIC: [bool; COLUMNS.len()] = [false, false, false, true, true, true, true, true, false, true];

pub(super) type Cells = [String; COLUMNS.len()];

/// One refresh: a row per route of every host that answered, and what went
/// wrong (hosts that refused, or nobody answering).
#[derive(Debug, Default)]
struct Snapshot {
    hosts: usize,
    rows: Vec<Cells>,
    problems: Vec<String>,
    /// Some host refused the request.
    refused: bool,
}

impl Snapshot {
    /// Ask every host for its status, for `wait`.
    async fn gather(control: &Control, wait: Duration) -> anyhow::Result<Snapshot> {
        let mut statuses = Vec::new();
        let mut snapshot = Snapshot::default();
        for answer in control.statuses(wait).await? {
            match answer {
                Ok(status) => statuses.push(status),
                Err(no) => {
                    snapshot.refused |= matches!(no, NoStatus::Refused(_));
                    snapshot.problems.push(no.to_string());
                }
            }
        }
        snapshot.hosts = statuses.len();
        snapshot.rows = rows(&statuses);
        Ok(snapshot)
    }
}

/// The rows of the table, for the terminal and `--once` alike: one per route,
/// hosts by name (a host serving nothing gets a row saying so).
pub(super) fn rows(statuses: &[Status]) -> Vec<Cells> {
    let mut hosts: Vec<&Status> = statuses.iter().collect();
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    let mut rows = Vec::new();
    for status in hosts {
        if status.routes.is_empty() {
            rows.push(std::array::from_fn(|i| match i {
                0 => status.host.clone(),
                1 => "(no routes)".into(),
                _ => String::new(),
            }));
        }
        for route in &status.routes {
            rows.push([
                status.host.clone(),
                route.name.clone(),
                format!("{}@{}", route.plugin, route.version),
                route.in_flight.to_string(),
                route.show_rate(),
                route.show_error_rate(),
                route.show_p50(),
                route.show_p99(),
                route.show_breaker().to_owned(),
                route.show_pending(),
            ]);
        }
    }
    rows
}

/// Each column's width: its widest cell or heading, in characters.
fn widths(rows: &[Cells]) -> [usize; COLUMNS.len()] {
    std::array::from_fn(|i| rows.iter().map(|row| row[i].chars().count()).chain([COLUMNS[i].len()]).max().unwrap_or(0))
}

/// The frame as plain text: the headings and the rows, in aligned columns.
pub(super) fn plain(rows: &[Cells]) -> String {
    let widths = widths(rows);
    let headings: Cells = COLUMNS.map(str::to_owned);
    let mut out = String::new();
    for row in std::iter::once(&headings).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let gap = if i == 0 { "" } else { "  " };
            let width = widths[i];
            let _ = match NUMERIC[i] {
                true => write!(line, "{gap}{cell:>width$}"),
                false => write!(line, "{gap}{cell:<width$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Draw `snapshot` on the terminal's frame: a title, the table, the problems.
fn draw(frame: &mut Frame<'_>, snapshot: &Snapshot, interval: Duration) {
    let [title, table, footer] = Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(frame.area());
    let every = humantime::format_duration(interval);
    frame.render_widget(
        Paragraph::new(format!(
            "switchyard top: {} host(s), {} route row(s); figures over the last 10 s; every {every}; q quits",
            snapshot.hosts,
            snapshot.rows.len()
        ))
        .bold(),
        title,
    );
    let align = |i: usize, text: &str| {
        let line = Line::from(text.to_owned());
        Cell::from(if NUMERIC[i] { line.right_aligned() } else { line })
    };
    let header = Row::new(COLUMNS.iter().enumerate().map(|(i, name)| align(i, name))).style(Style::new().add_modifier(Modifier::REVERSED));
    let body = snapshot.rows.iter().map(|row| Row::new(row.iter().enumerate().map(|(i, cell)| align(i, cell))));
    let widths = widths(&snapshot.rows).map(|w| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX)));
    frame.render_widget(Table::new(body, widths).header(header).column_spacing(2), table);
    frame.render_widget(Paragraph::new(snapshot.problems.join("; ")).red(), footer);
}

/// What the terminal asked for.
#[derive(Debug)]
enum Input {
    Quit,
    Redraw,
}

/// Read the terminal's events on a thread of its own (crossterm's reads
/// block) until `inputs` is closed or the terminal fails.
fn read_events(inputs: &mpsc::UnboundedSender<Input>) {
    while !inputs.is_closed() {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let input = match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Char('q') | KeyCode::Esc => Input::Quit,
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Input::Quit,
                _ => continue,
            },
            Ok(Event::Resize(..)) => Input::Redraw,
            Ok(_) => continue,
            Err(_) => return,
        };
        if inputs.send(input).is_err() {
            return;
        }
    }
}

/// Leaves raw mode and the alternate screen when dropped: on quitting, on an
/// error, and (ratatui's panic hook does it first) on a panic.
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// `switchyard top`.
pub(crate) async fn run(conn: &ConnArgs, seed: &ControlSeed, once: bool, interval: Duration, wait: Duration) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!interval.is_zero(), "--interval must be more than zero");
    let control = Control::connect(conn, seed).await?;
    // Every refresh must be over before the next one starts.
    let wait = wait.min(interval);
    if once {
        let snapshot = Snapshot::gather(&control, wait).await?;
        print!("{}", plain(&snapshot.rows));
        for problem in &snapshot.problems {
            eprintln!("{problem}");
        }
        return Ok(if snapshot.refused { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    live(control, interval, wait).await
}

/// The terminal view, until `q`, Esc or Ctrl-C.
async fn live(control: Control, interval: Duration, wait: Duration) -> anyhow::Result<ExitCode> {
    let mut terminal = ratatui::try_init()
        .inspect_err(|_| ratatui::restore())
        .context("setting up the terminal (`switchyard top --once` prints one frame without one)")?;
    let _restore = RestoreTerminal;
    // The refreshes run on their own, so keys are read while hosts answer.
    let (snapshots_tx, mut snapshots) = mpsc::channel(1);
    let refresh = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let snapshot = Snapshot::gather(&control, wait)
                .await
                .unwrap_or_else(|err| Snapshot { problems: vec![format!("{err:#}")], ..Snapshot::default() });
            if snapshots_tx.send(snapshot).await.is_err() {
                return;
            }
        }
    });
    let (inputs_tx, mut inputs) = mpsc::unbounded_channel();
    std::thread::spawn(move || read_events(&inputs_tx));
    let mut snapshot = Snapshot { problems: vec!["asking the hosts…".into()], ..Snapshot::default() };
    let result = loop {
        if let Err(err) = terminal.draw(|frame| draw(frame, &snapshot, interval)) {
            break Err(anyhow::Error::new(err).context("drawing on the terminal"));
        }
        tokio::select! {
            Some(next) = snapshots.recv() => snapshot = next,
            input = inputs.recv() => match input {
                Some(Input::Redraw) => {}
                // Quit, or the terminal can no longer be read.
                Some(Input::Quit) | None => break Ok(ExitCode::SUCCESS),
            },
            _ = tokio::signal::ctrl_c() => break Ok(ExitCode::SUCCESS),
        }
    };
    refresh.abort();
    result
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::reload::RouteStatus;

    fn route(name: &str, rate: f64, p50: Option<f64>) -> RouteStatus {
        RouteStatus {
            name: name.into(),
            serves: "core greet.>".into(),
            plugin: "echo".into(),
            version: "8d35c5085d1b".into(),
            rollbacks: 0,
            in_flight: 2,
            rate_per_sec: rate,
            error_rate: p50.map(|_| 0.125),
            p50_ms: p50,
            p99_ms: p50.map(|ms| ms * 8.0),
            breaker: Some("closed".into()),
            consumer_pending: None,
            trial: None,
        }
    }

    fn status(host: &str, routes: Vec<RouteStatus>) -> Status {
        Status {
            host: host.into(),
            url: "nats://127.0.0.1:4222".into(),
            started_at: 0,
            routes,
            plugins: Vec::new(),
            last_reload: None,
            counters: BTreeMap::new(),
        }
    }

    fn statuses() -> Vec<Status> {
        vec![
            status("b:2", vec![route("greet", 0.0, None)]),
            status("a:1", vec![route("greet", 123.45, Some(0.2)), route("orders", 7.0, Some(1.6))]),
            status("c:3", Vec::new()),
        ]
    }

    #[test]
    fn once_prints_aligned_rows_hosts_by_name() {
        let text = plain(&rows(&statuses()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "HOST  ROUTE        PLUGIN             IN FLIGHT  MSG/S   ERR%    P50     P99  BREAKER  PENDING");
        assert_eq!(lines[1], "a:1   greet        echo@8d35c5085d1b          2  123.5  12.5%  200µs   1.6ms  closed         -");
        assert_eq!(lines[2], "a:1   orders       echo@8d35c5085d1b          2    7.0  12.5%  1.6ms  12.8ms  closed         -");
        assert_eq!(lines[3], "b:2   greet        echo@8d35c5085d1b          2    0.0      -      -       -  closed         -");
        assert_eq!(lines[4], "c:3   (no routes)");
    }

    #[test]
    fn the_terminal_shows_the_same_rows() {
        let snapshot = Snapshot { hosts: 3, rows: rows(&statuses()), problems: vec!["refused: unsigned".into()], refused: true };
        let mut terminal = Terminal::new(TestBackend::new(120, 8)).expect("a test terminal");
        terminal.draw(|frame| draw(frame, &snapshot, Duration::from_secs(1))).expect("drawn");
        let buffer = terminal.backend().buffer();
        let lines: Vec<String> =
            (0..buffer.area.height).map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>()).collect();
        assert!(lines[0].starts_with("switchyard top: 3 host(s), 4 route row(s)"), "{lines:#?}");
        let once = plain(&snapshot.rows);
        for (screen, text) in lines[1..6].iter().zip(once.lines()) {
            assert_eq!(screen.trim_end(), text, "{lines:#?}");
        }
        assert_eq!(lines[7].trim_end(), "refused: unsigned");
    }
}

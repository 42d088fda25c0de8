//! Figures, their targets, and the two ways they leave the bench: a table on
//! stdout and `target/bench/results.json` (one object per figure).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// What a figure must reach to count as met.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// host / raw at least this (throughput).
    RatioAtLeast(f64),
    /// host / raw at most this (latency).
    RatioAtMost(f64),
    /// The host figure itself at most this (µs, MiB).
    HostAtMost(f64),
    /// host − raw at most this (CPU per message over the baseline's).
    OverRawAtMost(f64),
    /// Both sides must be exactly zero (dropped messages).
    BothZero,
    /// No target: the figure is reported (allocations per message).
    Report,
}

/// One line of the table: the host's figure beside the raw baseline of the same run.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub scenario: &'static str,
    pub metric: String,
    pub unit: &'static str,
    pub host: Option<f64>,
    pub raw: Option<f64>,
    pub target: Target,
}

impl Figure {
    pub(crate) fn new(scenario: &'static str, metric: impl Into<String>, unit: &'static str, host: f64, raw: f64, target: Target) -> Self {
        // NaN: that side was not measured (`--side`).
        let known = |v: f64| (!v.is_nan()).then_some(v);
        Self { scenario, metric: metric.into(), unit, host: known(host), raw: known(raw), target }
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.host, self.raw) {
            (Some(host), Some(raw)) if raw != 0.0 => Some(host / raw),
            _ => None,
        }
    }

    /// `None` when a side the target needs was not measured.
    pub(crate) fn met(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtLeast(t) => self.ratio().map(|r| r >= t),
            Target::RatioAtMost(t) => self.ratio().map(|r| r <= t),
            Target::HostAtMost(t) => self.host.map(|h| h <= t),
            Target::OverRawAtMost(t) => self.host.zip(self.raw).map(|(h, r)| h - r <= t),
            Target::BothZero => self.host.zip(self.raw).map(|(h, r)| h == 0.0 && r == 0.0),
            Target::Report => None,
        }
    }

    pub(crate) fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtLeast(t) => format!("ratio >= {t:.2}"),
            Target::RatioAtMost(t) => format!("ratio <= {t:.2}"),
            Target::HostAtMost(t) => format!("host <= {t} {}", self.unit),
            Target::OverRawAtMost(t) => format!("host - raw <= {t} {}", self.unit),
            Target::BothZero => "0 on both sides".into(),
            Target::Report => "-".into(),
        }
    }
}

/// The table `make bench` prints.
pub(crate) fn table(figures: &[Figure]) -> String {
    let header = ["scenario", "figure", "host", "raw", "ratio", "target", "met"];
    let rows: Vec<[String; 7]> = figures
        .iter()
        .map(|f| {
            [
                f.scenario.to_owned(),
                if f.unit.is_empty() { f.metric.clone() } else { format!("{} ({})", f.metric, f.unit) },
                f.host.map_or_else(|| "-".into(), number),
                f.raw.map_or_else(|| "-".into(), number),
                f.ratio().map_or_else(|| "-".into(), |r| format!("{r:.3}")),
                f.target_text(),
                match f.met() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, words left-aligned.
            if (2..=4).contains(&i) {
                let _ = write!(text, "{cell:>width$}  ");
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    out
}

/// Readable magnitudes: thousands separated, small values with decimals.
fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if value < 0.0 { format!("-{grouped}") } else { grouped }
    } else if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[derive(Serialize)]
struct JsonFigure<'a> {
    scenario: &'a str,
    figure: &'a str,
    unit: &'a str,
    host: Option<f64>,
    raw: Option<f64>,
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
}

/// Write every figure as one JSON object in an array.
pub(crate) fn write_json(path: &Path, figures: &[Figure]) -> anyhow::Result<()> {
    let objects: Vec<JsonFigure<'_>> = figures
        .iter()
        .map(|f| JsonFigure {
            scenario: f.scenario,
            figure: &f.metric,
            unit: f.unit,
            host: f.host,
            raw: f.raw,
            ratio: f.ratio(),
            target: f.target_text(),
            met: f.met(),
        })
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&objects).context("encoding the results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_decide_met() {
        let f = |host, raw, target| Figure::new("s", "m", "u", host, raw, target).met();
        assert_eq!(f(95.0, 100.0, Target::RatioAtLeast(0.90)), Some(true));
        assert_eq!(f(85.0, 100.0, Target::RatioAtLeast(0.90)), Some(false));
        assert_eq!(f(105.0, 100.0, Target::RatioAtMost(1.10)), Some(true));
        assert_eq!(f(120.0, 100.0, Target::RatioAtMost(1.10)), Some(false));
        assert_eq!(f(9.0, 1.0, Target::HostAtMost(10.0)), Some(true));
        assert_eq!(f(0.0, 0.0, Target::BothZero), Some(true));
        assert_eq!(f(0.0, 3.0, Target::BothZero), Some(false));
        assert_eq!(f(f64::NAN, 1.0, Target::RatioAtLeast(0.9)), None);
        assert_eq!(f(3.0, f64::NAN, Target::HostAtMost(10.0)), Some(true));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(999.0), "999");
        assert_eq!(number(0.734), "0.73");
    }
}

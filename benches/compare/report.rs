//! The figures of one side of a scenario, the ratio between the sides, the plain-text
//! table and the JSON document.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::load::Tally;

const MIB: f64 = 1024.0 * 1024.0;

/// What the table shows for one side of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Successful requests (or round trips, or starts) per second.
    pub rate: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub mib_per_second: Option<f64>,
    /// Requests per second of each measured round, in order.
    pub round_rates: Vec<f64>,
    /// Error message → count.
    pub error_kinds: Vec<(String, u64)>,
}

impl Figures {
    /// From the merged tally of all rounds, with the CPU seconds and peak RSS measured
    /// around them.
    pub fn from_tally(
        tally: &Tally,
        concurrency: usize,
        cpu_seconds: Option<f64>,
        peak_rss: Option<u64>,
        round_rates: Vec<f64>,
    ) -> Figures {
        let seconds = tally.elapsed.as_secs_f64();
        let per_second = |count: f64| if seconds > 0.0 { count / seconds } else { 0.0 };
        let latency = &tally.latency;
        let at = |quantile: f64| {
            (tally.ok > 0).then(|| latency.value_at_quantile(quantile) as f64 / 1000.0)
        };
        Figures {
            concurrency,
            requests: tally.ok,
            errors: tally.errors,
            seconds,
            rate: per_second(tally.ok as f64),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: (tally.ok > 0).then(|| latency.max() as f64 / 1000.0),
            cpu_seconds,
            peak_rss_bytes: peak_rss,
            mib_per_second: Some(per_second(tally.bytes as f64) / MIB),
            round_rates,
            error_kinds: tally
                .error_kinds
                .iter()
                .map(|(what, count)| (what.clone(), *count))
                .collect(),
        }
    }

    /// CPU milliseconds per successful request.
    pub fn cpu_ms_per_request(&self) -> Option<f64> {
        let cpu = self.cpu_seconds?;
        (self.requests > 0).then(|| cpu * 1000.0 / self.requests as f64)
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_bytes.map(|bytes| bytes as f64 / MIB)
    }

    /// Every numeric column, in table order.
    fn columns(&self) -> [Option<f64>; 10] {
        [
            Some(self.rate),
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
            Some(self.errors as f64),
            self.cpu_seconds,
            self.cpu_ms_per_request(),
            self.peak_rss_mib(),
            self.mib_per_second,
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds),
            "requests_per_second": round(self.rate),
            "latency_ms": {
                "p50": self.p50_ms.map(round),
                "p95": self.p95_ms.map(round),
                "p99": self.p99_ms.map(round),
                "max": self.max_ms.map(round),
            },
            "cpu_seconds": self.cpu_seconds.map(round),
            "cpu_ms_per_request": self.cpu_ms_per_request().map(round),
            "peak_rss_bytes": self.peak_rss_bytes,
            "mib_per_second": self.mib_per_second.map(round),
            "round_requests_per_second": self.round_rates.iter().copied().map(round).collect::<Vec<_>>(),
            "error_kinds": self.error_kinds.iter().map(|(what, count)| json!({"error": what, "count": count})).collect::<Vec<_>>(),
        })
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Supervisor figure over plain figure, where both exist and the plain one is not zero.
fn ratio(supervisor: Option<f64>, plain: Option<f64>) -> Option<f64> {
    match (supervisor, plain) {
        (Some(s), Some(p)) if p > 0.0 => Some(s / p),
        _ => None,
    }
}

/// One comparison inside a scenario: the plain side, the supervisor side, or both.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Empty for the main comparison; else what this pair measures (e.g. `wrk`).
    pub tag: String,
    pub plain: Option<Figures>,
    pub supervisor: Option<Figures>,
}

/// Everything one scenario produced.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub name: String,
    pub notes: Vec<String>,
    pub pairs: Vec<Pair>,
    /// Set when the scenario could not run to the end.
    pub failure: Option<String>,
}

/// Idle memory of the supervisor, one of its children and a plain `bun`.
#[derive(Debug, Clone, Default)]
pub struct IdleMemory {
    /// (what, RSS bytes, PSS bytes)
    pub rows: Vec<(String, u64, u64)>,
    pub notes: Vec<String>,
}

const HEADERS: [&str; 13] = [
    "scenario",
    "side",
    "conc",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "errors",
    "CPU s",
    "CPU ms/req",
    "peak RSS MiB",
    "MiB/s",
];

fn number(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn side_cells(scenario: &str, side: &str, figures: &Figures) -> Vec<String> {
    let mut cells = vec![
        scenario.to_owned(),
        side.to_owned(),
        figures.concurrency.to_string(),
    ];
    let columns = figures.columns();
    for (index, value) in columns.iter().enumerate() {
        cells.push(if index == 5 {
            figures.errors.to_string()
        } else {
            number(*value)
        });
    }
    cells
}

fn ratio_cells(scenario: &str, side: &str, supervisor: &Figures, plain: &Figures) -> Vec<String> {
    let mut cells = vec![scenario.to_owned(), side.to_owned(), String::new()];
    let s = supervisor.columns();
    let p = plain.columns();
    for (supervisor_value, plain_value) in s.iter().zip(p.iter()) {
        cells.push(match ratio(*supervisor_value, *plain_value) {
            Some(r) => format!("{}x", ratio_text(r)),
            None => "-".into(),
        });
    }
    cells
}

/// Two decimals, or enough for two significant digits below 0.1.
fn ratio_text(r: f64) -> String {
    if r == 0.0 || r >= 0.1 {
        format!("{r:.2}")
    } else {
        let decimals = (1.0 - r.log10().floor()).clamp(2.0, 8.0) as usize;
        format!("{r:.decimals$}")
    }
}

fn label(base: &str, tag: &str) -> String {
    if tag.is_empty() {
        base.to_owned()
    } else {
        format!("{base} ({tag})")
    }
}

/// The plain-text table, one row per scenario and side plus a ratio row, notes below.
pub fn table(reports: &[ScenarioReport], idle: Option<&IdleMemory>) -> String {
    let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| h.to_string()).collect()];
    let mut notes = Vec::new();
    for report in reports {
        for pair in &report.pairs {
            if let Some(plain) = &pair.plain {
                rows.push(side_cells(&report.name, &label("plain", &pair.tag), plain));
            }
            if let Some(supervisor) = &pair.supervisor {
                rows.push(side_cells(
                    &report.name,
                    &label("supervisor", &pair.tag),
                    supervisor,
                ));
            }
            if let (Some(plain), Some(supervisor)) = (&pair.plain, &pair.supervisor) {
                rows.push(ratio_cells(
                    &report.name,
                    &label("sup/plain", &pair.tag),
                    supervisor,
                    plain,
                ));
            }
        }
        if let Some(failure) = &report.failure {
            let mut cells = vec![report.name.clone(), "FAILED".to_owned()];
            cells.resize(HEADERS.len(), String::new());
            rows.push(cells);
            notes.push(format!("{}: FAILED: {failure}", report.name));
        }
        for note in &report.notes {
            notes.push(format!("{}: {note}", report.name));
        }
        for pair in &report.pairs {
            for (side, figures) in [("plain", &pair.plain), ("supervisor", &pair.supervisor)] {
                let Some(figures) = figures else { continue };
                for (what, count) in &figures.error_kinds {
                    notes.push(format!(
                        "{}: {} errors: {count} × {what}",
                        report.name,
                        label(side, &pair.tag)
                    ));
                }
            }
        }
    }
    let mut out = String::new();
    if rows.len() > 1 {
        out.push_str(&layout(&rows, 2));
    }
    if let Some(idle) = idle {
        out.push('\n');
        out.push_str(&idle_table(idle));
    }
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn idle_table(idle: &IdleMemory) -> String {
    let mut rows = vec![vec![
        "idle memory".to_owned(),
        "RSS MiB".to_owned(),
        "PSS MiB".to_owned(),
    ]];
    for (what, rss, pss) in &idle.rows {
        rows.push(vec![
            what.clone(),
            format!("{:.1}", *rss as f64 / MIB),
            format!("{:.1}", *pss as f64 / MIB),
        ]);
    }
    let mut out = layout(&rows, 1);
    for note in &idle.notes {
        let _ = writeln!(out, "  {note}");
    }
    out
}

/// Left-aligns the first `left` columns, right-aligns the rest.
fn layout(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let width = widths[c];
            if c < left {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if index == 0 {
            let total = widths
                .iter()
                .map(|w| w + 2)
                .sum::<usize>()
                .saturating_sub(2);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// The JSON document: run settings, every scenario with both sides and the ratios.
pub fn json_document(
    settings: Value,
    reports: &[ScenarioReport],
    idle: Option<&IdleMemory>,
) -> Value {
    let scenarios: Vec<Value> = reports
        .iter()
        .map(|report| {
            let pairs: Vec<Value> = report
                .pairs
                .iter()
                .map(|pair| {
                    let mut object = Map::new();
                    object.insert(
                        "measure".into(),
                        json!(if pair.tag.is_empty() {
                            "main"
                        } else {
                            pair.tag.as_str()
                        }),
                    );
                    object.insert(
                        "plain".into(),
                        pair.plain
                            .as_ref()
                            .map(Figures::to_json)
                            .unwrap_or(Value::Null),
                    );
                    object.insert(
                        "supervisor".into(),
                        pair.supervisor
                            .as_ref()
                            .map(Figures::to_json)
                            .unwrap_or(Value::Null),
                    );
                    if let (Some(plain), Some(supervisor)) = (&pair.plain, &pair.supervisor) {
                        let names = [
                            "requests_per_second",
                            "p50_ms",
                            "p95_ms",
                            "p99_ms",
                            "max_ms",
                            "errors",
                            "cpu_seconds",
                            "cpu_ms_per_request",
                            "peak_rss",
                            "mib_per_second",
                        ];
                        let s = supervisor.columns();
                        let p = plain.columns();
                        let ratios: Map<String, Value> = names
                            .iter()
                            .enumerate()
                            .map(|(i, name)| {
                                (name.to_string(), json!(ratio(s[i], p[i]).map(round)))
                            })
                            .collect();
                        object.insert("supervisor_over_plain".into(), Value::Object(ratios));
                    }
                    Value::Object(object)
                })
                .collect();
            json!({
                "name": report.name,
                "notes": report.notes,
                "failure": report.failure,
                "measures": pairs,
            })
        })
        .collect();
    let idle = idle.map(|idle| {
        json!({
            "rows": idle.rows.iter().map(|(what, rss, pss)| json!({"what": what, "rss_bytes": rss, "pss_bytes": pss})).collect::<Vec<_>>(),
            "notes": idle.notes,
        })
    });
    json!({
        "settings": settings,
        "scenarios": scenarios,
        "idle_memory": idle,
    })
}

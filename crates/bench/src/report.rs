//! Figures, ratios, targets; the table and the JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::systems::System;

/// One figure of one system over all passes.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Measurement {
    /// `W1` … `W6`.
    pub workload: &'static str,
    /// `p50`, `msg/s`, …
    pub metric: &'static str,
    /// `µs`, `msg/s`, `MB/s`, `hs/s`, `bytes`, …
    pub unit: &'static str,
    /// The system's key (`netproto-tcp`, `raw-tcp`, …).
    pub system: &'static str,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// One value per pass.
    pub values: Vec<f64>,
    /// Median of `values`.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    #[serde(skip)]
    netproto: bool,
}

/// A netproto median divided by a baseline median of the same figure.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Ratio {
    /// Workload.
    pub workload: &'static str,
    /// Figure.
    pub metric: &'static str,
    /// The netproto system.
    pub system: &'static str,
    /// The baseline.
    pub baseline: &'static str,
    /// netproto ÷ baseline (for times lower is better, for rates higher).
    pub ratio: f64,
}

/// One of the speed targets, checked.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The measured value (a ratio, or bytes for W5).
    pub value: f64,
    /// The bound, as text (`<= 1.15`).
    pub bound: String,
    /// Whether it holds.
    pub met: bool,
}

impl Target {
    /// `value` against `bound`, from above (`at_most`) or below.
    fn bounded(what: String, value: f64, bound: f64, at_most: bool) -> Self {
        Self {
            what,
            value,
            bound: format!("{} {bound}", if at_most { "<=" } else { ">=" }),
            met: if at_most {
                value <= bound
            } else {
                value >= bound
            },
        }
    }
}

/// Everything one `run` measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Quick mode (not a measurement).
    pub quick: bool,
    /// Passes per figure.
    pub runs: usize,
    /// Logical CPUs of this machine.
    pub cpus: usize,
    /// Every figure.
    pub measurements: Vec<Measurement>,
    /// netproto against each baseline.
    pub ratios: Vec<Ratio>,
    /// The targets of the performance issue.
    pub targets: Vec<Target>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Ratio targets: (workload, metric, system, baseline, bound, at most?).
const RATIO_TARGETS: &[(&str, &str, &str, &str, f64, bool)] = &[
    // Issue #20's targets (round 2).
    ("W1", "p50", TCP, "raw-tcp", 1.0, true),
    ("W1", "p99", TCP, "raw-tcp", 1.1, true),
    ("W2", "msg/s", TCP, "raw-tcp", 0.9, false),
    ("W2", "msg/s", TCP, "rustls-aes", 1.1, false),
    ("W3", "MB/s", TCP, "rustls-aes", 1.0, false),
    ("W3", "MB/s", TCP, "raw-tcp", 0.9, false),
    ("W4", "sequential", TCP, "snow-tcp", 1.2, false),
    ("W4", "sequential", TCP, "rustls-aes", 1.0, false),
    ("W4", "8 concurrent", TCP, "snow-tcp", 1.2, false),
    ("W4", "8 concurrent", TCP, "rustls-aes", 1.0, false),
    // Issue #16's UDP targets.
    ("W1", "p50", UDP, "raw-udp", 1.2, true),
    ("W3", "MB/s", UDP, "quinn", 1.0, false),
    // Issue #23's call path.
    ("W9", "p50", CLIENT, "raw-tcp", 1.1, true),
    ("W9", "p99", CLIENT, "raw-tcp", 1.2, true),
    ("W9", "calls/s", CLIENT, "raw-tcp", 0.9, false),
    ("W9", "64 KiB ×4", CLIENT, "raw-tcp", 0.8, false),
];

/// Two medians of one run against each other: (what, numerator,
/// denominator, bound, at most?).
type MedianTarget = (
    &'static str,
    (&'static str, &'static str, &'static str),
    (&'static str, &'static str, &'static str),
    f64,
    bool,
);
const MEDIAN_TARGETS: &[MedianTarget] = &[
    (
        "W6 req/s ÷ W2 netproto-tcp msg/s",
        ("W6", "req/s", TCP),
        ("W2", "msg/s", TCP),
        0.6,
        false,
    ),
    // Issue #20: the patterns with fewer DH operations, next to
    // TLS 1.3 (which has no pattern rows).
    (
        "W4 sequential IK: netproto-tcp ÷ rustls-aes",
        ("W4", "sequential IK", TCP),
        ("W4", "sequential", "rustls-aes"),
        1.0,
        false,
    ),
    (
        "W4 sequential NK: netproto-tcp ÷ rustls-aes",
        ("W4", "sequential NK", TCP),
        ("W4", "sequential", "rustls-aes"),
        1.0,
        false,
    ),
    // Issue #18: middleware must cost the hot path (almost) nothing.
    (
        "W6 with an empty tower layer ÷ without",
        ("W6", "layered req/s", TCP),
        ("W6", "req/s", TCP),
        0.95,
        false,
    ),
    // Issue #18: an urgent message under bulk.
    (
        "W10 urgent p50 under 64 MiB bulk ÷ idle p50",
        ("W10", "busy p50", TCP),
        ("W10", "idle p50", TCP),
        2.0,
        true,
    ),
    (
        "W10 the same, SO_SNDBUF 64 KiB",
        ("W10", "busy p50, SO_SNDBUF 64 KiB", TCP),
        ("W10", "idle p50", TCP),
        2.0,
        true,
    ),
    (
        "W10 the same, TCP_NOTSENT_LOWAT 128 KiB",
        ("W10", "busy p50, TCP_NOTSENT_LOWAT 128 KiB", TCP),
        ("W10", "idle p50", TCP),
        2.0,
        true,
    ),
    (
        "W9 p50: netproto-client ÷ netproto-tcp",
        ("W9", "p50", CLIENT),
        ("W9", "p50", TCP),
        1.1,
        true,
    ),
];

const TCP: &str = "netproto-tcp";
const UDP: &str = "netproto-udp";
const CLIENT: &str = "netproto-client";

impl Report {
    pub(crate) fn new(quick: bool, runs: usize) -> Self {
        Self {
            quick,
            runs,
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            measurements: Vec::new(),
            ratios: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub(crate) fn record(
        &mut self,
        workload: &'static str,
        metric: &'static str,
        unit: &'static str,
        system: System,
        _pass: usize,
        value: f64,
    ) {
        let key = system.key();
        if let Some(m) = self
            .measurements
            .iter_mut()
            .find(|m| m.workload == workload && m.metric == metric && m.system == key)
        {
            m.values.push(value);
            return;
        }
        self.measurements.push(Measurement {
            workload,
            metric,
            unit,
            system: key,
            higher_is_better: !matches!(unit, "µs" | "bytes"),
            values: vec![value],
            median: 0.0,
            min: 0.0,
            max: 0.0,
            netproto: system.is_netproto(),
        });
    }

    /// The median of a figure, if measured.
    pub fn median(&self, workload: &str, metric: &str, system: &str) -> Option<f64> {
        self.measurements
            .iter()
            .find(|m| m.workload == workload && m.metric == metric && m.system == system)
            .map(|m| m.median)
    }

    pub(crate) fn finish(&mut self) {
        for m in &mut self.measurements {
            m.median = median(&m.values);
            m.min = m.values.iter().copied().fold(f64::INFINITY, f64::min);
            m.max = m.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
        let mut ratios = Vec::new();
        for np in self.measurements.iter().filter(|m| m.netproto) {
            for base in self
                .measurements
                .iter()
                .filter(|b| !b.netproto && b.workload == np.workload && b.metric == np.metric)
            {
                if base.median > 0.0 {
                    ratios.push(Ratio {
                        workload: np.workload,
                        metric: np.metric,
                        system: np.system,
                        baseline: base.system,
                        ratio: np.median / base.median,
                    });
                }
            }
        }
        self.ratios = ratios;
        self.check_targets();
    }

    fn ratio(&self, workload: &str, metric: &str, system: &str, baseline: &str) -> Option<f64> {
        self.ratios
            .iter()
            .find(|r| {
                r.workload == workload
                    && r.metric == metric
                    && r.system == system
                    && r.baseline == baseline
            })
            .map(|r| r.ratio)
    }

    fn check_targets(&mut self) {
        let mut targets = Vec::new();
        for &(w, metric, system, base, bound, at_most) in RATIO_TARGETS {
            if let Some(value) = self.ratio(w, metric, system, base) {
                targets.push(Target::bounded(
                    format!("{w} {metric}: {system} ÷ {base}"),
                    value,
                    bound,
                    at_most,
                ));
            }
        }
        if let Some(rss) = self.median("W5", "RSS/idle conn", "netproto-tcp") {
            targets.push(Target::bounded(
                "W5 server RSS per idle connection (bytes)".into(),
                rss,
                4096.0,
                true,
            ));
        }
        for &(what, (w1, m1, s1), (w2, m2, s2), bound, at_most) in MEDIAN_TARGETS {
            if let (Some(num), Some(den)) = (self.median(w1, m1, s1), self.median(w2, m2, s2)) {
                targets.push(Target::bounded(what.into(), num / den, bound, at_most));
            }
        }
        self.targets = targets;
    }

    /// The report as pretty JSON (stable keys: the field names above).
    ///
    /// # Errors
    /// Never in practice (serialising plain data).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// A plain-text table: per figure, every system's median and min–max,
    /// and each netproto figure's ratio to each baseline.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "netproto bench: {} pass(es){}, {} CPUs; median [min–max]; ratios are netproto ÷ baseline",
            self.runs,
            if self.quick { ", QUICK (smoke test, not a measurement)" } else { "" },
            self.cpus
        );
        let mut figures: Vec<(&str, &str)> = Vec::new();
        for m in &self.measurements {
            if !figures.contains(&(m.workload, m.metric)) {
                figures.push((m.workload, m.metric));
            }
        }
        for (workload, metric) in figures {
            let rows: Vec<&Measurement> = self
                .measurements
                .iter()
                .filter(|m| m.workload == workload && m.metric == metric)
                .collect();
            let Some(first) = rows.first() else { continue };
            let baselines: Vec<&str> = rows
                .iter()
                .filter(|m| !m.netproto)
                .map(|m| m.system)
                .collect();
            let _ = writeln!(
                out,
                "\n{workload} {metric} ({}, {} is better)",
                first.unit,
                if first.higher_is_better {
                    "higher"
                } else {
                    "lower"
                }
            );
            let mut header = format!("  {:<19} {:>12} {:>25}", "system", "median", "min–max");
            for b in &baselines {
                let _ = write!(header, " {:>14}", format!("÷{b}"));
            }
            let _ = writeln!(out, "{header}");
            for m in rows {
                let mut line = format!(
                    "  {:<19} {:>12} {:>25}",
                    m.system,
                    fmt_value(m.median),
                    format!("{}–{}", fmt_value(m.min), fmt_value(m.max))
                );
                if m.netproto {
                    for b in &baselines {
                        let r = self.ratios.iter().find(|r| {
                            r.workload == workload
                                && r.metric == metric
                                && r.system == m.system
                                && r.baseline == *b
                        });
                        let _ = write!(
                            line,
                            " {:>14}",
                            r.map_or("—".into(), |r| format!("{:.2}×", r.ratio))
                        );
                    }
                }
                let _ = writeln!(out, "{line}");
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\ntargets (netproto-tcp unless named):");
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "  [{}] {:<48} {:>10} (target {})",
                    if t.met { "met" } else { "NOT met" },
                    t.what,
                    fmt_value(t.value),
                    t.bound
                );
            }
        }
        out
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

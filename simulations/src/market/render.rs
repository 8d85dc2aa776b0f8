//! Turns a [`Report`] into a report folder: `report.json` (the report itself, to compare runs),
//! `summary.md` (for people) and six SVG plots under `plots/`.
//!
//! The plots are drawn by plotters as SVG without fonts or system libraries: text is left to the
//! viewer's fonts, so the layout of labels is approximate but the files render anywhere.

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{Percentiles, Report, Sample};

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder of the report could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder's `report.json` could not be read.
    #[error("cannot read {}: {detail}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The report could not be serialised as JSON.
    #[error("cannot serialise the report: {0}")]
    Json(#[from] serde_json::Error),
    /// A plot could not be drawn.
    #[error("cannot draw the {plot} plot: {detail}")]
    Plot {
        /// The plot's file name, without `.svg`.
        plot: &'static str,
        /// What plotters said.
        detail: String,
    },
}

/// Writes `report.json`, `summary.md` and `plots/*.svg` into `dir` (created if missing).
/// `others` are reports of other scenarios (for instance `reports/small/report.json` beside
/// `reports/large/`); with them, the latency-against-size plot has one point per network size.
pub fn write(report: &Report, dir: &Path, others: &[Report]) -> Result<(), Error> {
    let plots = dir.join("plots");
    fs::create_dir_all(&plots).map_err(|source| Error::Io { path: plots.clone(), source })?;
    put(&dir.join("report.json"), &serde_json::to_string_pretty(report)?)?;
    put(&dir.join("summary.md"), &summary(report))?;
    let sizes = sizes(report, others);
    let [delivered, latencies, closures, counts, memories, outboxes] = PLOTS;
    plot(&plots, delivered, |area, title| delivery(area, title, report))?;
    plot(&plots, latencies, |area, title| latency(area, title, &sizes))?;
    plot(&plots, closures, |area, title| closure(area, title, &report.closure_days_all))?;
    plot(&plots, counts, |area, title| messages(area, title, &report.messages_histogram))?;
    plot(&plots, memories, |area, title| memory(area, title, report))?;
    plot(&plots, outboxes, |area, title| outbox(area, title, report))
}

/// Reads the `report.json` of every subfolder of `root` except `skip` (the folder being written),
/// ignoring folders without one; sorted by node count.
pub fn siblings(root: &Path, skip: &Path) -> Vec<Report> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    // `skip` may be spelt differently from the paths read_dir yields (relative, `..`).
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let skip = canonical(skip);
    let mut found: Vec<Report> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && canonical(path) != skip)
        .filter_map(|path| read(&path.join("report.json")))
        .collect();
    found.sort_by(|a, b| (a.scenario.nodes, &a.scenario.name).cmp(&(b.scenario.nodes, &b.scenario.name)));
    found
}

/// Reads the `report.json` in `dir`.
pub fn load(dir: &Path) -> Result<Report, Error> {
    let path = dir.join("report.json");
    let text = fs::read_to_string(&path).map_err(|e| Error::Read { path: path.clone(), detail: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| Error::Read { path, detail: e.to_string() })
}

fn read(path: &Path) -> Option<Report> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text)
        .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable report"))
        .ok()
}

fn put(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

// ---- Plots ----

const SIZE: (u32, u32) = (800, 480);
const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
/// Closure histogram bins, in scenario days.
const CLOSURE_BIN: f64 = 15.0;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;
/// A plot's title and file name (without `.svg`).
type Plot = (&'static str, &'static str);
type Chart<'a, 'b, X> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

/// Draws into a string first, so that a failed write is reported with its path rather than lost
/// in the backend's drop.
fn plot(dir: &Path, (title, name): Plot, draw: impl FnOnce(&Area<'_>, &str) -> Drawn) -> Result<(), Error> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = area.fill(&WHITE).and_then(|()| draw(&area, title)).and_then(|()| area.present());
        drawn.map_err(|e| Error::Plot { plot: name, detail: e.to_string() })?;
    }
    put(&dir.join(format!("{name}.svg")), &svg)
}

fn chart<'a, 'b, X: AsRangedCoord<Value = f64>>(
    area: &'a Area<'b>,
    title: &str,
    x: X,
    y: Range<f64>,
) -> Result<Chart<'a, 'b, X::CoordDescType>, DrawingAreaErrorKind<std::io::Error>> {
    ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
}

fn mesh<X: Ranged<ValueType = f64> + ValueFormatter<f64>>(c: &mut Chart<'_, '_, X>, x: &str, y: &str) -> Drawn {
    c.configure_mesh().x_desc(x).y_desc(y).x_label_formatter(&|v| tick(*v)).y_label_formatter(&|v| tick(*v)).draw()
}

fn line<X: Ranged<ValueType = f64>>(
    c: &mut Chart<'_, '_, X>,
    points: Vec<(f64, f64)>,
    (color, marks): (RGBColor, u32),
    label: &str,
) -> Drawn {
    c.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(marks))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    Ok(())
}

fn legend<'a, 'b: 'a, X: Ranged<ValueType = f64>>(c: &mut Chart<'a, 'b, X>, at: SeriesLabelPosition) -> Drawn {
    c.configure_series_labels().position(at).background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.5)).draw()
}

/// A range plotters can draw: a degenerate or non-finite one would give an empty or broken axis.
fn span(lo: f64, hi: f64) -> Range<f64> {
    if lo.is_finite() && hi.is_finite() && hi > lo {
        lo..hi
    } else if lo.is_finite() {
        lo - 1.0..lo + 1.0
    } else {
        0.0..1.0
    }
}

/// Zero to a little above the largest value, so that the top of a line or bar stays visible.
fn upto(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let top = values.into_iter().filter(|v| v.is_finite()).fold(0.0, f64::max);
    0.0..if top > 0.0 { top * 1.1 } else { 1.0 }
}

fn days(r: &Report) -> Range<f64> {
    let first = r.series.first().map_or(0.0, |s| s.day);
    let last = r.series.last().map_or(f64::from(r.scenario.days), |s| s.day);
    span(first, last)
}

fn ratio(s: &Sample) -> f64 {
    if s.sent == 0 {
        1.0
    } else {
        s.delivered as f64 / s.sent as f64
    }
}

/// The days each partitioned sample stands for: from its day to the next sample's.
fn partitions(series: &[Sample]) -> Vec<(f64, f64)> {
    let next = series.iter().skip(1).map(|s| s.day).chain(series.last().map(|s| s.day + 1.0));
    series.iter().zip(next).filter(|(s, _)| s.partitioned).map(|(s, end)| (s.day, end)).collect()
}

fn delivery(area: &Area<'_>, title: &str, r: &Report) -> Drawn {
    let ratios: Vec<(f64, f64)> = r.series.iter().map(|s| (s.day, ratio(s))).collect();
    let low = ratios.iter().map(|p| p.1).fold(1.0, f64::min);
    // A run that delivered nearly everything would otherwise be a flat line along the top.
    let y0 = if low > 0.5 { (low - 0.05).max(0.0) } else { 0.0 };
    let x = days(r);
    let mut c = chart(area, title, x.clone(), y0..1.05)?;
    mesh(&mut c, "scenario day", "delivered / sent")?;
    // The last sample's partition runs a day past the axis otherwise.
    let shaded: Vec<_> = partitions(&r.series).into_iter().map(|(a, b)| (a, b.min(x.end))).collect();
    if !shaded.is_empty() {
        let style = RED_.mix(0.15).filled();
        c.draw_series(shaded.into_iter().map(|(a, b)| Rectangle::new([(a, y0), (b, 1.05)], style)))?
            .label("partitioned")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], style));
    }
    line(&mut c, ratios, (BLUE_, 0), "delivered / sent")?;
    legend(&mut c, SeriesLabelPosition::LowerRight)
}

/// One point per network size, `(nodes, [p50, p95, p99])`, sorted by size; of reports with the
/// same name, this run's wins, then the first of `others`. Sizes are at least 1, for the log axis.
fn sizes(report: &Report, others: &[Report]) -> Vec<(f64, [f64; 3])> {
    let mut by_name: BTreeMap<&str, &Report> = BTreeMap::new();
    for r in std::iter::once(report).chain(others) {
        by_name.entry(&r.scenario.name).or_insert(r);
    }
    let mut points: Vec<(f64, [f64; 3])> = by_name
        .values()
        .map(|r| (r.scenario.nodes.max(1) as f64, [r.latency_ms.p50, r.latency_ms.p95, r.latency_ms.p99]))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn latency(area: &Area<'_>, title: &str, points: &[(f64, [f64; 3])]) -> Drawn {
    let y = upto(points.iter().flat_map(|p| p.1));
    let lo = points.first().map_or(0.0, |p| p.0);
    let hi = points.last().map_or(0.0, |p| p.0);
    if lo < hi {
        // Sizes grow by factors (tens, hundreds, thousands of nodes): a log axis spaces them evenly.
        let x = (lo / 1.5..hi * 1.5).log_scale();
        latency_series(chart(area, title, x, y)?, points)
    } else {
        latency_series(chart(area, title, span(lo * 0.5, lo * 1.5), y)?, points)
    }
}

fn latency_series<'a, 'b: 'a, X: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut c: Chart<'a, 'b, X>,
    points: &[(f64, [f64; 3])],
) -> Drawn {
    mesh(&mut c, "nodes", "latency (ms)")?;
    for (i, (label, color)) in [("p50", BLUE_), ("p95", ORANGE), ("p99", RED_)].into_iter().enumerate() {
        let series = points.iter().filter_map(|(n, p)| Some((*n, *p.get(i)?))).collect();
        line(&mut c, series, (color, 4), label)?;
    }
    // Latency grows with size: the upper left corner is the one the lines leave free.
    legend(&mut c, SeriesLabelPosition::UpperLeft)
}

fn bars(values: &[f64], width: f64) -> Vec<(f64, u64)> {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for v in values.iter().filter(|v| v.is_finite() && **v >= 0.0) {
        *counts.entry((v / width).floor() as u64).or_default() += 1;
    }
    counts.into_iter().map(|(bin, n)| (bin as f64 * width, n)).collect()
}

fn closure(area: &Area<'_>, title: &str, days: &[f64]) -> Drawn {
    let bins = bars(days, CLOSURE_BIN);
    let right = bins.last().map_or(0.0, |b| b.0) + CLOSURE_BIN;
    let mut c = chart(area, title, 0.0..right, upto(bins.iter().map(|b| b.1 as f64)))?;
    mesh(&mut c, "days from first message to closure (15-day bins)", "relationships")?;
    let style = BLUE_.mix(0.8).filled();
    let gap = CLOSURE_BIN * 0.05;
    c.draw_series(
        bins.iter().map(|&(x, n)| Rectangle::new([(x + gap, 0.0), (x + CLOSURE_BIN - gap, n as f64)], style)),
    )?;
    Ok(())
}

fn messages(area: &Area<'_>, title: &str, histogram: &[(u64, u64)]) -> Drawn {
    let lo = histogram.iter().map(|h| h.0).min().unwrap_or(0) as f64;
    let hi = histogram.iter().map(|h| h.0).max().unwrap_or(0) as f64;
    let y = upto(histogram.iter().map(|h| h.1 as f64));
    let mut c = chart(area, title, span(lo - 1.0, hi + 1.0), y)?;
    mesh(&mut c, "chained messages in the relationship", "relationships")?;
    let style = GREEN_.mix(0.8).filled();
    c.draw_series(
        histogram.iter().map(|&(m, n)| Rectangle::new([(m as f64 - 0.4, 0.0), (m as f64 + 0.4, n as f64)], style)),
    )?;
    Ok(())
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

fn memory(area: &Area<'_>, title: &str, r: &Report) -> Drawn {
    let nodes = r.scenario.nodes.max(1) as f64;
    // Above the baseline, as `per_node_peak` is, so that the curve and the peak line compare.
    let per_node: Vec<(f64, f64)> =
        r.series.iter().map(|s| (s.day, kib(s.rss.saturating_sub(r.memory.baseline_rss)) / nodes)).collect();
    let peak = kib(r.memory.per_node_peak);
    let x = days(r);
    let y = upto(per_node.iter().map(|p| p.1).chain([peak]));
    let mut c = chart(area, title, x.clone(), y)?;
    mesh(&mut c, "scenario day", "KiB per node above baseline")?;
    line(&mut c, per_node, (BLUE_, 0), "resident per node")?;
    line(&mut c, vec![(x.start, peak), (x.end, peak)], (RED_, 0), "peak per node")?;
    legend(&mut c, SeriesLabelPosition::LowerRight)
}

fn outbox(area: &Area<'_>, title: &str, r: &Report) -> Drawn {
    let y = upto(r.series.iter().map(|s| s.outbox_total.max(s.outbox_max) as f64));
    let mut c = chart(area, title, days(r), y)?;
    mesh(&mut c, "scenario day", "messages queued")?;
    line(&mut c, r.series.iter().map(|s| (s.day, s.outbox_total as f64)).collect(), (BLUE_, 0), "all outboxes")?;
    line(&mut c, r.series.iter().map(|s| (s.day, s.outbox_max as f64)).collect(), (ORANGE, 0), "deepest outbox")?;
    legend(&mut c, SeriesLabelPosition::UpperRight)
}

/// Axis labels: whole numbers without a fraction, others with at most three decimals.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

// ---- Summary ----

/// `1234567` as `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn table(head: [&str; 2], rows: Vec<(String, String)>) -> String {
    let mut out = format!("| {} | {} |\n|---|---:|\n", head[0], head[1]);
    for (name, value) in rows {
        out += &format!("| {name} | {value} |\n");
    }
    out
}

fn named(prefix: &str, entries: &[(String, u64)]) -> Vec<(String, String)> {
    entries.iter().map(|(name, n)| (format!("{prefix} `{name}`"), count(*n))).collect()
}

fn outcomes_md(r: &Report) -> String {
    let o = &r.outcomes;
    let mut rows = vec![("Relationships".into(), count(o.relationships))];
    rows.extend(named("Phase", &o.by_phase));
    rows.extend(named("Script", &o.by_script));
    rows.extend(named("Messages of kind", &o.by_kind));
    rows.extend([
        ("Intents".into(), count(o.intents)),
        ("Offers in answer to an intent".into(), count(o.intent_offers)),
        ("Consent revocations".into(), count(o.revocations)),
        ("Usage reports countersigned".into(), count(o.countersigned)),
    ]);
    if o.refused.is_empty() {
        rows.push(("Steps refused".into(), "none".into()));
    }
    rows.extend(named("Refused with", &o.refused));
    rows.push(("Digest".into(), format!("`{}`", o.digest)));
    format!("## Outcomes\n\nFixed by the seed.\n\n{}", table(["Outcome", "Value"], rows))
}

fn delivery_md(r: &Report) -> String {
    let d = &r.delivery;
    let rows = vec![
        ("Sent".into(), count(d.sent)),
        ("Delivered".into(), count(d.delivered)),
        ("Refused by the recipient".into(), count(d.refused)),
        ("Undelivered".into(), count(d.undelivered)),
        ("Undelivered to departed nodes".into(), count(d.undelivered_departed)),
        // Truncated: a ratio just short of 1 must not read as 100.000 %.
        ("Ratio".into(), format!("{:.3} %", (d.ratio * 100_000.0).floor() / 1000.0)),
        ("Retries".into(), count(d.retries)),
    ];
    let mut out = format!("## Delivery\n\n{}\n", table(["Messages", "Count"], rows));
    if d.explained.is_empty() && d.ratio >= 1.0 {
        out += "Every message whose recipient was online again before the end was delivered.\n";
    }
    for line in &d.explained {
        out += &format!("- {line}\n");
    }
    out
}

fn distributions_md(r: &Report) -> String {
    let row = |name: &str, p: &Percentiles, digits: usize| {
        let f = |v: f64| format!("{v:.digits$}");
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            count(p.count),
            f(p.p50),
            f(p.p95),
            f(p.p99),
            f(p.max),
            f(p.mean)
        )
    };
    format!(
        "## Latency, closure, messages\n\n| | count | p50 | p95 | p99 | max | mean |\n|---|---:|---:|---:|---:|---:|---:|\n{}{}{}",
        row("Delivery latency (ms)", &r.latency_ms, 1),
        row("Closure (scenario days)", &r.closure_days, 1),
        row("Messages per relationship", &r.messages_per_relationship, 0),
    )
}

fn resources_md(r: &Report) -> String {
    let (m, f, w) = (&r.memory, &r.faults, &r.wall);
    let memory = vec![
        ("Baseline RSS (MiB)".into(), mib(m.baseline_rss)),
        ("RSS with every node started (MiB)".into(), mib(m.started_rss)),
        ("Peak RSS (MiB)".into(), mib(m.peak_rss)),
        ("Per node, started (KiB)".into(), format!("{:.1}", kib(m.per_node_started))),
        ("Per node, peak (KiB)".into(), format!("{:.1}", kib(m.per_node_peak))),
    ];
    let faults = vec![
        ("Churn (offline and back)".into(), count(f.churn)),
        ("Offline node-days".into(), format!("{:.1}", f.offline_node_days)),
        ("Departed nodes".into(), count(f.departed)),
        ("Partitions".into(), count(f.partitions)),
        ("Connection resets".into(), count(f.resets)),
        ("Stalled ticks".into(), count(f.stalled_ticks)),
    ];
    let wall = [("Setup", w.setup), ("Scenario", w.scenario), ("Drain", w.drain), ("Total", w.total)];
    let wall = wall.iter().map(|(name, s)| (name.to_string(), format!("{s:.1}"))).collect();
    format!(
        "## Memory\n\n{}\n## Faults\n\n{}\n## Wall time\n\n{}",
        table(["Memory", "Value"], memory),
        table(["Fault", "Value"], faults),
        table(["Phase", "Seconds"], wall)
    )
}

/// The plots, in the order of the summary.
const PLOTS: [Plot; 6] = [
    ("Delivery ratio over scenario days", "delivery"),
    ("Delivery latency against network size", "latency"),
    ("Closure time of relationships", "closure"),
    ("Messages per relationship", "messages"),
    ("Resident memory per node", "memory"),
    ("Outbox depth over scenario days", "outbox"),
];

fn summary(r: &Report) -> String {
    let s = &r.scenario;
    let head = format!(
        "# Market simulation: {}\n\nSeed {}, {} nodes ({} customers + {} vendors), {} days, ticks of {} h.\n",
        s.name,
        s.seed,
        count(s.nodes as u64),
        count(s.customers as u64),
        count(s.vendors as u64),
        s.days,
        s.tick_hours
    );
    let plots: String = PLOTS.iter().map(|(title, file)| format!("![{title}](plots/{file}.svg)\n\n")).collect();
    [head, outcomes_md(r), delivery_md(r), distributions_md(r), resources_md(r), format!("## Plots\n\n{plots}")]
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::report::{Delivery, FaultSummary, Memory, Outcomes, ScenarioSummary, Wall};

    fn sample(day: f64, sent: u64, delivered: u64, partitioned: bool) -> Sample {
        let rss = 200 << 20;
        Sample { day, outbox_total: sent - delivered, outbox_max: 3, online: 90, rss, sent, delivered, partitioned }
    }

    fn report(name: &str, nodes: usize, latency: f64) -> Report {
        let pairs = |items: &[(&str, u64)]| items.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let closures = vec![20.0, 35.5, 40.0, 200.0, 365.0];
        Report {
            scenario: ScenarioSummary {
                name: name.into(),
                seed: 7,
                nodes,
                customers: nodes - nodes / 10,
                vendors: nodes / 10,
                days: 3,
                tick_hours: 6,
                file: "name = \"x\"\n".into(),
            },
            outcomes: Outcomes {
                relationships: 1234,
                by_phase: pairs(&[("active", 1000), ("closed", 234)]),
                by_script: pairs(&[("early separation", 34), ("one-year stand", 1200)]),
                by_kind: pairs(&[("offer", 1234), ("usage", 40000)]),
                intents: 50,
                intent_offers: 120,
                revocations: 3,
                countersigned: 40000,
                refused: Vec::new(),
                digest: "abc123def456".into(),
            },
            delivery: Delivery {
                sent: 1_234_567,
                delivered: 1_234_560,
                refused: 0,
                undelivered: 7,
                undelivered_departed: 2,
                ratio: 0.999_995_9,
                explained: vec!["5 messages to nodes offline at the end".into()],
                retries: 42,
            },
            latency_ms: Percentiles::of(&[latency, latency * 2.0, latency * 5.0]),
            closure_days: Percentiles::of(&closures),
            closure_days_all: closures,
            messages_per_relationship: Percentiles::of(&[3.0, 30.0, 40.0]),
            messages_histogram: vec![(3, 34), (30, 1000), (40, 200)],
            memory: Memory {
                baseline_rss: 20 << 20,
                started_rss: 150 << 20,
                peak_rss: 260 << 20,
                per_node_started: 130 << 10,
                per_node_peak: 240 << 10,
            },
            series: vec![sample(0.0, 0, 0, false), sample(1.0, 100, 90, true), sample(2.0, 200, 199, false)],
            faults: FaultSummary {
                churn: 12,
                offline_node_days: 30.5,
                departed: 1,
                partitions: 1,
                resets: 5,
                stalled_ticks: 0,
            },
            wall: Wall { setup: 1.5, scenario: 60.25, drain: 3.0, total: 64.75 },
        }
    }

    #[test]
    fn writes_the_json_the_summary_and_every_plot() {
        let dir = tempfile::tempdir().unwrap();
        let large = report("large", 1000, 40.0);
        let others = [report("small", 10, 5.0), report("medium", 100, 12.0), report("large", 5, 1.0)];
        write(&large, dir.path(), &others).unwrap();

        for (title, file) in PLOTS {
            let svg = fs::read_to_string(dir.path().join(format!("plots/{file}.svg"))).unwrap();
            assert!(svg.contains("<svg"), "{file}");
            assert!(svg.contains(title), "{file} lacks its title {title}");
        }
        let summary = fs::read_to_string(dir.path().join("summary.md")).unwrap();
        assert!(summary.starts_with("# Market simulation: large\n"));
        for needle in ["abc123def456", "99.999 %", "1,234,567", "- 5 messages to nodes offline at the end"] {
            assert!(summary.contains(needle), "summary lacks {needle}:\n{summary}");
        }
        for (_, file) in PLOTS {
            assert!(summary.contains(&format!("](plots/{file}.svg)")), "summary lacks the {file} plot");
        }
        let json = fs::read_to_string(dir.path().join("report.json")).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap().outcomes, large.outcomes);
    }

    #[test]
    fn one_latency_point_per_size_this_run_winning() {
        let this = report("large", 1000, 40.0);
        let points = sizes(&this, &[report("small", 10, 5.0), report("large", 5, 1.0), report("small", 20, 1.0)]);
        assert_eq!(points.iter().map(|p| p.0).collect::<Vec<_>>(), [10.0, 1000.0]);
        assert_eq!(points[1].1, [this.latency_ms.p50, this.latency_ms.p95, this.latency_ms.p99]);
    }

    #[test]
    fn siblings_reads_the_other_folders_only() {
        let root = tempfile::tempdir().unwrap();
        for (name, nodes) in [("medium", 100), ("small", 10), ("large", 1000)] {
            write(&report(name, nodes, 1.0), &root.path().join(name), &[]).unwrap();
        }
        fs::create_dir(root.path().join("empty")).unwrap();
        let found = siblings(root.path(), &root.path().join("large"));
        assert_eq!(found.iter().map(|r| r.scenario.name.as_str()).collect::<Vec<_>>(), ["small", "medium"]);
        assert!(siblings(&root.path().join("missing"), root.path()).is_empty());
    }

    #[test]
    fn load_reads_back_what_write_wrote() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("medium");
        let written = report("medium", 200, 2.0);
        write(&written, &dir, &[]).unwrap();
        let loaded = load(&dir).unwrap();
        assert_eq!((loaded.scenario.name.as_str(), loaded.scenario.nodes), ("medium", 200));
        assert_eq!(serde_json::to_string(&loaded).unwrap(), serde_json::to_string(&written).unwrap());
        assert!(matches!(load(&root.path().join("missing")), Err(Error::Read { .. })));
        fs::write(dir.join("report.json"), "{").unwrap();
        assert!(matches!(load(&dir), Err(Error::Read { .. })));
    }

    #[test]
    fn an_empty_report_renders() {
        let mut empty = report("empty", 0, 0.0);
        empty.series.clear();
        empty.closure_days_all.clear();
        empty.messages_histogram.clear();
        (empty.latency_ms, empty.closure_days, empty.messages_per_relationship) = Default::default();
        (empty.memory, empty.faults, empty.wall) = Default::default();
        empty.delivery = Delivery {
            sent: 0,
            delivered: 0,
            refused: 0,
            undelivered: 0,
            undelivered_departed: 0,
            ratio: 1.0,
            explained: Vec::new(),
            retries: 0,
        };
        empty.outcomes = Outcomes {
            relationships: 0,
            by_phase: Vec::new(),
            by_script: Vec::new(),
            by_kind: Vec::new(),
            intents: 0,
            intent_offers: 0,
            revocations: 0,
            countersigned: 0,
            ..empty.outcomes
        };
        let dir = tempfile::tempdir().unwrap();
        write(&empty, &dir.path().join("new"), &[]).unwrap();
        let summary = fs::read_to_string(dir.path().join("new/summary.md")).unwrap();
        assert!(summary.contains("Every message whose recipient was online again before the end was delivered."));
        assert_eq!(count(0), "0");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(999), "999");
    }
}

//! `rapport-sim`: runs a market scenario and writes its report folder.
//!
//! ```text
//! rapport-sim run small                     # simulations/scenarios/small.toml → reports/small/
//! rapport-sim run path/to/my.toml --out DIR # any scenario file, any folder
//! rapport-sim render reports/small          # redraw a report folder beside newer siblings
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rapport_simulations::market::{self, render, scenario::Scenario};

#[derive(Debug, Parser)]
#[command(name = "rapport-sim", about = "Seeded many-node Rapport market simulations", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario: a shipped one by name (small, medium, large) or a scenario file.
    Run {
        /// `small`, `medium`, `large`, or the path of a scenario file.
        scenario: String,
        /// The report folder; by default `reports/<name>` under the current directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use this seed instead of the file's.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Redraw a report folder's summary and plots from its `report.json`, with the reports in
    /// the folders beside it (the latency-against-size plot compares them).
    Render {
        /// The report folder.
        dir: PathBuf,
    },
}

fn scenario_path(name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.extension().is_some() || path.components().count() > 1 {
        return path.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"))
}

/// The reports in the folders beside `dir`.
fn siblings(dir: &Path) -> Vec<market::report::Report> {
    dir.parent().map(|root| render::siblings(root, dir)).unwrap_or_default()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rapport-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (scenario, out, seed, quiet) = match cli.command {
        Command::Run { scenario, out, seed, quiet } => (scenario, out, seed, quiet),
        Command::Render { dir } => {
            let report = render::load(&dir)?;
            render::write(&report, &dir, &siblings(&dir))?;
            println!("report: {}", dir.join("summary.md").display());
            return Ok(());
        }
    };
    let mut s = Scenario::load(&scenario_path(&scenario))?;
    if let Some(seed) = seed {
        s.seed = seed;
    }
    let out = out.unwrap_or_else(|| Path::new("reports").join(&s.name));
    eprintln!("rapport-sim: {} ({} nodes, seed {}) → {}", s.name, s.nodes(), s.seed, out.display());
    let report = market::run(&s, &market::Options { progress: !quiet })?;
    render::write(&report, &out, &siblings(&out))?;
    let d = &report.delivery;
    println!(
        "{}: {} relationships, {} messages, delivery {:.3}%, latency p50/p95/p99 {:.1}/{:.1}/{:.1} ms, \
         peak RSS {:.0} MiB, {:.0} s; digest {}",
        s.name,
        report.outcomes.relationships,
        d.sent,
        d.ratio * 100.0,
        report.latency_ms.p50,
        report.latency_ms.p95,
        report.latency_ms.p99,
        report.memory.peak_rss as f64 / (1 << 20) as f64,
        report.wall.total,
        report.outcomes.digest
    );
    println!("report: {}", out.join("summary.md").display());
    Ok(())
}

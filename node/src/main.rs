//! `rapport`: the Rapport node daemon and its CLI. Parses the command line and calls into the
//! library; failures exit non-zero with one line on stderr.

use std::process::ExitCode;

use clap::Parser as _;
use rapport_node::cli::{self, Cli};

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rapport: {e:#}");
            ExitCode::FAILURE
        }
    }
}

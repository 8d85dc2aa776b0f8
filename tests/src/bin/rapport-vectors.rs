//! Writes every test vector under `spec/vectors/` (spec §12), deterministically.
//!
//! `cargo run -p rapport-tests --bin rapport-vectors [DIR]`; DIR defaults to the workspace's
//! `spec/vectors`. The `vectors` test fails if the files on disk differ from what this writes.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| rapport_tests::workspace().join(rapport_tests::VECTORS_DIR));
    match rapport_tests::write_all(&dir) {
        Ok(n) => {
            println!("wrote {n} vector files to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapport-vectors: writing {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

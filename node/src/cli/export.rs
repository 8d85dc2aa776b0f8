//! `rapport export` and `rapport verify` (spec/node.md §6, §7). Export writes a bundle to
//! standard output for `-`, otherwise to a new file, written whole or not at all, never inside
//! the data directory; verify checks one offline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::bundle::Unsigned;

/// Where a bundle goes.
#[derive(Debug)]
pub(super) enum Destination {
    /// `--out -`.
    Stdout,
    /// A file, checked by [`check`]: outside the data directory, and new unless forced.
    File(PathBuf),
}

/// Checks `out` before anything is fetched, so a refused destination costs no API call. The
/// final write re-checks what can change in between ([`write`] does not clobber without
/// `force`).
pub(super) fn check(out: &Path, data_dir: &Path, force: bool) -> anyhow::Result<Destination> {
    if out == Path::new("-") {
        return Ok(Destination::Stdout);
    }
    let shown = out.display();
    let Some(name) = out.file_name() else {
        anyhow::bail!("{shown}: not a file name");
    };
    // The parent, not the file: the file may not exist yet, and a symlink named `out` is
    // replaced by the rename, never followed.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
    let data = std::fs::canonicalize(data_dir).map_err(|e| anyhow::anyhow!("{}: {e}", data_dir.display()))?;
    // The data directory holds the node's key, token and store: overwriting one of them loses
    // the identity or the relationships for good, so not even --force allows it.
    if parent.starts_with(&data) {
        anyhow::bail!("{shown}: refusing to write inside the node's data directory {}", data.display());
    }
    // symlink_metadata: a dangling symlink is something that exists, too.
    if !force && std::fs::symlink_metadata(out).is_ok() {
        anyhow::bail!("{shown} exists; pass --force to replace it");
    }
    Ok(Destination::File(parent.join(name)))
}

/// Writes `bytes` to a temporary file (mode 0600: a bundle is the relationship's whole history)
/// beside `path` and renames it into place, so a reader sees the old file or the whole new one.
pub(super) fn write(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let shown = path.display();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".rapport-export-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let mut tmp = builder.tempfile_in(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    tmp.write_all(bytes).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    // Durable before it is visible: a crash after the rename must not leave an empty bundle.
    tmp.as_file().sync_all().map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let placed = if force { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    placed.map_err(|e| match e.error.kind() {
        // Created since `check` looked.
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!("{shown} exists; pass --force to replace it"),
        _ => anyhow::anyhow!("{shown}: {}", e.error),
    })?;
    Ok(())
}

/// `rapport verify FILE`: checks a bundle offline and says who sealed it, or that nothing did.
pub(super) fn verify(file: &Path, allow_unsigned: bool, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let unsigned = if allow_unsigned { Unsigned::Allow } else { Unsigned::Refuse };
    let report = crate::bundle::verify_file(&bytes, unsigned)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let sealed = match (&report.sealed_by, report.sealed_by_role, report.sealed_at) {
            (Some(by), Some(role), Some(at)) => {
                let role = match role {
                    rapport_protocol::Role::Customer => "customer",
                    rapport_protocol::Role::Vendor => "vendor",
                };
                format!("sealed by the {role} {by} at {at}, complete as sealed")
            }
            _ => "UNSIGNED: nothing shows that no message was dropped or the manifest not edited".into(),
        };
        println!(
            "verified: relationship {} is {}; {} messages and {} receipts, all signatures strict-valid; {sealed}",
            report.relationship, report.phase, report.chained, report.acknowledgements
        );
    }
    Ok(())
}

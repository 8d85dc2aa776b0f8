//! The owner's block list on disk (spec/node.md §3.1): `<data-dir>/blocked`.

use rapport_protocol::KeyId;

/// The block list's file in the data directory: one hex key id per line; blank lines and lines
/// starting with `#` are ignored.
pub const BLOCKED_FILE: &str = "blocked";

/// Reads the block list at `path`; a missing file is an empty list. A line that is not a key
/// id is an error naming the line.
pub fn read_blocked(path: &std::path::Path) -> Result<Vec<KeyId>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = KeyId::from_hex(line).ok_or_else(|| {
            format!("invalid {}:{}: not a key id (one key id, 64 hex digits, per line)", path.display(), n + 1)
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// Replaces the block list at `path` with `keys`: written to a temporary file, synced, renamed
/// over the old one (mode 0600), so that a crash leaves the old list or the new one.
pub fn write_blocked(path: &std::path::Path, keys: &[KeyId]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut text = String::from("# Keys this node refuses every message from (rapport block, rapport unblock).\n");
    for key in keys {
        text.push_str(&key.to_hex());
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyId {
        KeyId::from_bytes([n; 32])
    }

    #[test]
    fn the_block_list_file_round_trips_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BLOCKED_FILE);
        assert_eq!(read_blocked(&path).unwrap(), Vec::<KeyId>::new(), "no file, no keys");
        write_blocked(&path, &[key(1), key(2)]).unwrap();
        assert_eq!(read_blocked(&path).unwrap(), vec![key(1), key(2)]);
        write_blocked(&path, &[key(2)]).unwrap();
        assert_eq!(read_blocked(&path).unwrap(), vec![key(2)]);
        std::fs::write(&path, format!("# mine\n\n{}\nnot a key\n", key(3).to_hex())).unwrap();
        let e = read_blocked(&path).unwrap_err();
        assert!(e.contains(":4:"), "{e}");
    }
}

//! The node's identity and secrets in its data directory (spec/node.md §1): one Ed25519 key, which
//! signs Rapport messages and is also the libp2p identity, and the API bearer token. Both files
//! are created with mode 0600, and the daemon refuses to start if either is readable by others.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use libp2p::identity::{self, Keypair};
use libp2p::PeerId;
use rand::RngCore as _;
use rapport_protocol::KeyId;

use crate::config::{self, CONFIG_FILE, KEY_FILE, TOKEN_FILE};

/// Why the identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `rapport init` found an existing data directory; pass `--force` to keep its key and
    /// rewrite the rest, or choose another directory.
    #[error("{0} already holds a Rapport node (use --force to rewrite its config; the key is kept)")]
    Exists(PathBuf),
    /// A file is readable or writable by group or others; `chmod 600` it.
    #[error("{path} has mode {mode:o}; it must not be accessible to group or others (chmod 600)")]
    Permissions {
        /// Which file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A directory or file others can write: they could replace the `api` file (and so receive
    /// the CLI's bearer token) or the node's files. `chmod go-w` it.
    #[error("{path} has mode {mode:o}: group or others can write it and could redirect or replace this node's files (chmod go-w)")]
    Writable {
        /// Which file or directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The data directory has no key; run `rapport init`.
    #[error("no key in {0}; run `rapport init` first")]
    NotInitialised(PathBuf),
    /// A secret file is damaged.
    #[error("{path} is not a valid {what}")]
    Invalid {
        /// Which file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}

/// The node's key and what derives from it.
#[derive(Clone)]
pub struct Identity {
    /// The signing key.
    pub key: SigningKey,
    /// The libp2p keypair made of the same key.
    pub keypair: Keypair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("peer_id", &self.peer_id()).finish_non_exhaustive()
    }
}

impl Identity {
    /// From a secret key.
    pub fn from_key(key: SigningKey) -> Result<Identity, Error> {
        let mut secret = key.to_bytes();
        let keypair = Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|_| Error::Invalid { path: PathBuf::new(), what: "Ed25519 secret key" })?;
        Ok(Identity { key, keypair })
    }

    /// The Rapport key id (the public key).
    pub fn key_id(&self) -> KeyId {
        KeyId::from_bytes(self.key.verifying_key().to_bytes())
    }

    /// The libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }
}

/// The peer id of the node whose Rapport key is `key`; `None` for bytes that are not a valid
/// Ed25519 key under spec §3.3 (canonical encoding, not of small order).
pub fn peer_of(key: &KeyId) -> Option<PeerId> {
    rapport_protocol::cose::public_key(key.as_bytes()).ok()?;
    peer_of_valid(key)
}

/// A peer id's bytes for an Ed25519 key: the identity multihash (code 0, length 36) of the
/// key's protobuf encoding (field 1, key type 1 = Ed25519; field 2, the 32 key bytes).
const ED25519_PEER_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The peer id of `key`, which the caller knows is a valid key (a verified signature was made
/// with it, or [`peer_of`] accepted it before). Byte arithmetic only: no point is decompressed,
/// which [`peer_of`] does twice and which cost a tenth of the node's time per message.
pub fn peer_of_valid(key: &KeyId) -> Option<PeerId> {
    let mut bytes = [0u8; 38];
    bytes[..6].copy_from_slice(&ED25519_PEER_PREFIX);
    bytes[6..].copy_from_slice(key.as_bytes());
    PeerId::from_bytes(&bytes).ok()
}

/// Whether `peer` is the peer id of `key`, without decompressing anything.
pub fn is_peer_of(peer: &PeerId, key: &KeyId) -> bool {
    let bytes = peer.to_bytes();
    bytes.len() == 38 && bytes[..6] == ED25519_PEER_PREFIX && bytes[6..] == key.as_bytes()[..]
}

/// The Rapport key id of `peer`, if its peer id embeds an Ed25519 key.
pub fn key_of(peer: &PeerId) -> Option<KeyId> {
    let public = identity::PublicKey::try_decode_protobuf(&peer.to_bytes()[2..]).ok()?;
    let ed = public.try_into_ed25519().ok()?;
    Some(KeyId::from_bytes(ed.to_bytes()))
}

/// Writes a file readable and writable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Refuses a secret file that group or others can access.
fn check_private(path: &Path) -> Result<(), Error> {
    let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions { path: path.into(), mode });
    }
    Ok(())
}

/// Refuses a file or directory that group or others can write.
fn check_unshared(path: &Path) -> Result<(), Error> {
    let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::Writable { path: path.into(), mode });
    }
    Ok(())
}

/// Refuses a data directory, or its `api` file if there is one, that other users can write.
/// The daemon checks before it starts and the CLI before it sends the token: whoever can
/// rewrite `api` points the CLI, and its bearer token, at a listener of their own.
pub fn check_data_dir(data_dir: &Path) -> Result<(), Error> {
    check_unshared(data_dir)?;
    let api = data_dir.join(config::API_FILE);
    if api.exists() {
        check_unshared(&api)?;
    }
    Ok(())
}

/// What `rapport init` did.
#[derive(Debug)]
pub struct Init {
    /// The node's identity (new, or the existing one kept by `--force`).
    pub identity: Identity,
    /// Whether a new key was made.
    pub new_key: bool,
}

/// `rapport init`: creates `data_dir` with `config.toml`, a new key and a new API token. With
/// `force`, an existing directory gets a fresh config and token, but its key is kept: a node's
/// key is its identity in every relationship and is never replaced silently.
pub fn init(data_dir: &Path, network: &str, force: bool) -> Result<Init, Error> {
    init_with(data_dir, network, force, None)
}

/// [`init`], with `key` as the new node's key instead of a fresh one (a test network's
/// bootstrap node runs with its published key). An existing key is still never replaced.
pub fn init_with(data_dir: &Path, network: &str, force: bool, key: Option<SigningKey>) -> Result<Init, Error> {
    let key_path = data_dir.join(KEY_FILE);
    let exists = key_path.exists() || data_dir.join(CONFIG_FILE).exists();
    if exists && !force {
        return Err(Error::Exists(data_dir.into()));
    }
    fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(io(data_dir))?;
    let (identity, new_key) = if key_path.exists() {
        (load(data_dir)?, false)
    } else {
        let key = key.unwrap_or_else(|| SigningKey::generate(&mut rand::rngs::OsRng));
        write_private(&key_path, format!("{}\n", hex::encode(key.to_bytes())).as_bytes())?;
        (Identity::from_key(key)?, true)
    };
    let token_path = data_dir.join(TOKEN_FILE);
    if token_path.exists() {
        fs::remove_file(&token_path).map_err(io(&token_path))?;
    }
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    write_private(&token_path, format!("{}\n", hex::encode(token)).as_bytes())?;
    let config_path = data_dir.join(CONFIG_FILE);
    fs::write(&config_path, config::initial_file(network)).map_err(io(&config_path))?;
    Ok(Init { identity, new_key })
}

/// Loads the key of an initialised data directory, refusing it if others can read it.
pub fn load(data_dir: &Path) -> Result<Identity, Error> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        return Err(Error::NotInitialised(data_dir.into()));
    }
    check_private(&path)?;
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::Invalid { path: path.clone(), what: "hex Ed25519 secret key" })?;
    Identity::from_key(SigningKey::from_bytes(&bytes))
}

/// Loads the API token, refusing it if others can read it.
pub fn load_token(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join(TOKEN_FILE);
    if !path.exists() {
        return Err(Error::NotInitialised(data_dir.into()));
    }
    check_private(&path)?;
    let token = fs::read_to_string(&path).map_err(io(&path))?.trim().to_owned();
    if token.len() < 32 {
        return Err(Error::Invalid { path, what: "API token" });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_private_files_and_never_replaces_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("node");
        let first = init(&d, "local", false).unwrap();
        assert!(first.new_key);
        for f in [KEY_FILE, TOKEN_FILE] {
            assert_eq!(fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
        }
        let token = load_token(&d).unwrap();
        assert!(matches!(init(&d, "local", false), Err(Error::Exists(_))));
        let again = init(&d, "testnet", true).unwrap();
        assert!(!again.new_key);
        assert_eq!(again.identity.peer_id(), first.identity.peer_id(), "--force keeps the key");
        assert_ne!(load_token(&d).unwrap(), token, "--force makes a new token");
        assert_eq!(load(&d).unwrap().peer_id(), first.identity.peer_id());
    }

    #[test]
    fn secrets_readable_by_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "local", false).unwrap();
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Permissions { mode: 0o644, .. })));
        fs::set_permissions(dir.path().join(TOKEN_FILE), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(load_token(dir.path()), Err(Error::Permissions { mode: 0o640, .. })));
        // A directory or `api` file others can write is refused, even with private secrets.
        fs::set_permissions(dir.path().join(TOKEN_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        check_data_dir(dir.path()).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(check_data_dir(dir.path()), Err(Error::Writable { mode: 0o777, .. })));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        check_data_dir(dir.path()).unwrap();
        fs::write(dir.path().join(config::API_FILE), "127.0.0.1:1\n").unwrap();
        fs::set_permissions(dir.path().join(config::API_FILE), fs::Permissions::from_mode(0o622)).unwrap();
        let e = check_data_dir(dir.path()).unwrap_err();
        assert!(matches!(e, Error::Writable { mode: 0o622, .. }) && e.to_string().contains("chmod go-w"), "{e}");
    }

    #[test]
    fn peer_ids_and_key_ids_correspond() {
        let id = Identity::from_key(SigningKey::from_bytes(&[4; 32])).unwrap();
        assert_eq!(peer_of(&id.key_id()), Some(id.peer_id()));
        assert_eq!(key_of(&id.peer_id()), Some(id.key_id()));
        assert_eq!(peer_of(&KeyId::from_bytes([0xff; 32])), None, "not a point");
    }

    #[test]
    fn byte_arithmetic_gives_libp2p_peer_ids() {
        for seed in 0..32u8 {
            let id = Identity::from_key(SigningKey::from_bytes(&[seed; 32])).unwrap();
            assert_eq!(peer_of_valid(&id.key_id()), Some(id.peer_id()), "seed {seed}");
            assert!(is_peer_of(&id.peer_id(), &id.key_id()));
            let other = Identity::from_key(SigningKey::from_bytes(&[seed.wrapping_add(1); 32])).unwrap();
            assert!(!is_peer_of(&other.peer_id(), &id.key_id()));
        }
        assert!(!is_peer_of(&PeerId::random(), &KeyId::from_bytes([1; 32])), "not an Ed25519 peer id");
    }
}

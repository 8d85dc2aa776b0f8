//! Node configuration (spec/node.md §1). Each setting comes from the first layer that sets it:
//! command-line flags, then `RAPPORT_*` environment variables (clap reads both), then
//! `config.toml` in the data directory, then the network profile, then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the configuration file in the data directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the file holding the node's Ed25519 secret key (hex), mode 0600.
pub const KEY_FILE: &str = "key";
/// Name of the file holding the API bearer token, mode 0600.
pub const TOKEN_FILE: &str = "api-token";
/// Name of the file the running daemon writes with its API address.
pub const API_FILE: &str = "api";
/// Name of the sled database directory (`store = "sled"`).
pub const DB_DIR: &str = "db";
/// Name of the log store's directory (`store = "log"`, the default).
pub const LOG_DIR: &str = "log";
/// Name of the file the running daemon holds an exclusive lock on, with its pid inside.
pub const LOCK_FILE: &str = "lock";

/// Connections a node keeps open unless configured otherwise.
pub const DEFAULT_TARGET_PEERS: u32 = 32;

/// Which storage backend holds the node's records (spec/node.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One append-only file, indexed in memory: one write and one `fdatasync` per group
    /// commit. The default.
    Log,
    /// A sled database.
    Sled,
}

impl StoreKind {
    /// The backend's directory inside the data directory.
    pub fn dir(self) -> &'static str {
        match self {
            StoreKind::Log => LOG_DIR,
            StoreKind::Sled => DB_DIR,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (a duplicate key, an unknown field, a value
    /// of the wrong type); fix the named key on the named line.
    #[error("invalid {}{}: {detail}", path.display(), at.as_ref().map(|a| format!(":{}, key {:?}", a.line, a.key)).unwrap_or_default())]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Where in the file, when the parser says.
        at: Option<At>,
        /// What was wrong.
        detail: String,
    },
    /// No network profile has this name.
    #[error("unknown network {0:?} (known: local, testnet)")]
    UnknownNetwork(String),
    /// A value is out of range.
    #[error("invalid setting {name}: {detail}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        detail: String,
    },
}

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// Line number, from 1.
    pub line: usize,
    /// The key on that line (or the table a header opens), as written.
    pub key: String,
}

impl At {
    /// The line and key of byte `offset` of `text`.
    fn of(text: &str, offset: usize) -> At {
        let offset = offset.min(text.len());
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[start..end].trim();
        let key = match line.split_once('=') {
            Some((key, _)) => key.trim(),
            None => line.trim_start_matches('[').trim_end_matches(']').trim(),
        };
        At { line: text[..start].matches('\n').count() + 1, key: key.trim_matches('"').to_owned() }
    }
}

/// Reads TOML `text` of file `path` as `T`; a syntax or schema error is [`Error::Parse`],
/// with the line and key it points at. The node's configuration and profiles use it, and so do
/// the market simulation's scenario files.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, Error> {
    toml::from_str(text).map_err(|e| parse_error(text, path, &e))
}

/// A TOML error as [`Error::Parse`], with the line and key it points at.
fn parse_error(text: &str, path: &Path, e: &toml::de::Error) -> Error {
    let at = e.span().map(|span| At::of(text, span.start));
    Error::Parse { path: path.into(), at, detail: e.message().trim_end().to_owned() }
}

/// Settings as one layer gives them; `None` leaves the setting to the next layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Network profile name.
    pub network: Option<String>,
    /// libp2p listen addresses.
    pub listen: Option<Vec<String>>,
    /// Address of the local control API.
    pub api: Option<SocketAddr>,
    /// Let the control API listen on an address that is not loopback.
    pub api_allow_remote: Option<bool>,
    /// Peers to dial at start and to seed Kademlia with.
    pub bootstrap: Option<Vec<String>>,
    /// Local peer discovery by mDNS.
    pub mdns: Option<bool>,
    /// Most established connections in all.
    pub max_connections: Option<u32>,
    /// Most established connections per peer.
    pub max_connections_per_peer: Option<u32>,
    /// Connections the node keeps open and dials known peers to reach.
    pub target_peers: Option<u32>,
    /// Refuse new connections once the process uses this share of the machine's memory.
    pub max_memory_fraction: Option<f64>,
    /// Storage backend.
    pub store: Option<StoreKind>,
    /// Relationships awaiting the owner's first answer, at most, per remote key.
    pub max_unanswered_per_key: Option<u32>,
    /// Relationships awaiting the owner's first answer, at most, per delivering peer.
    pub max_unanswered_per_peer: Option<u32>,
    /// Bytes of the stranger's messages stored, at most, per relationship awaiting an answer.
    pub max_unanswered_bytes: Option<u64>,
    /// Messages a minute, at most, into one relationship awaiting an answer.
    pub max_unanswered_per_minute: Option<u32>,
    /// Messages a minute, at most, into one answered relationship.
    pub max_messages_per_minute: Option<u32>,
}

impl Layer {
    /// Each setting of `self`, or else of `lower`.
    pub fn or(self, lower: Layer) -> Layer {
        Layer {
            network: self.network.or(lower.network),
            listen: self.listen.or(lower.listen),
            api: self.api.or(lower.api),
            api_allow_remote: self.api_allow_remote.or(lower.api_allow_remote),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            mdns: self.mdns.or(lower.mdns),
            max_connections: self.max_connections.or(lower.max_connections),
            max_connections_per_peer: self.max_connections_per_peer.or(lower.max_connections_per_peer),
            target_peers: self.target_peers.or(lower.target_peers),
            max_memory_fraction: self.max_memory_fraction.or(lower.max_memory_fraction),
            store: self.store.or(lower.store),
            max_unanswered_per_key: self.max_unanswered_per_key.or(lower.max_unanswered_per_key),
            max_unanswered_per_peer: self.max_unanswered_per_peer.or(lower.max_unanswered_per_peer),
            max_unanswered_bytes: self.max_unanswered_bytes.or(lower.max_unanswered_bytes),
            max_unanswered_per_minute: self.max_unanswered_per_minute.or(lower.max_unanswered_per_minute),
            max_messages_per_minute: self.max_messages_per_minute.or(lower.max_messages_per_minute),
        }
    }

    /// Reads a layer from a TOML file.
    pub fn from_file(path: &Path) -> Result<Layer, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })?;
        Layer::parse(&text, path)
    }

    /// Parses a layer from the TOML text of the file at `path` (named in errors only).
    pub fn parse(text: &str, path: &Path) -> Result<Layer, Error> {
        // TOML itself forbids a key twice in a table; the parser refuses it, so no setting is
        // silently overridden by a later line.
        from_toml(text, path)
    }
}

/// The network profiles, from `networks/` in the repository, built into the binary.
const PROFILES: [(&str, &str); 2] =
    [("local", include_str!("../../networks/local.toml")), ("testnet", include_str!("../../networks/testnet.toml"))];

/// A network's profile file (`networks/NAME.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    name: String,
    mdns: bool,
    bootstrap: Vec<String>,
    bootstrap_node: Option<BootstrapNode>,
}

/// How to run a network's bootstrap node: its published key and its listen addresses
/// (`rapport testnet up` runs it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapNode {
    /// Its Ed25519 secret key, hex. Published: a test network's bootstrap node holds nothing.
    pub key: String,
    /// Where it listens; the profile's `bootstrap` list names these addresses.
    pub listen: Vec<String>,
}

/// A network profile: which protocol ids, bootstrap peers and discovery a network uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Prefix of every protocol id and gossip topic, e.g. `/rapport/testnet`.
    pub prefix: String,
    /// Peers a node of this network dials at start (below the config file, above the defaults).
    pub bootstrap: Vec<String>,
    /// Whether its nodes look for neighbours by mDNS.
    pub mdns: bool,
    /// How to run its bootstrap node, if it has one.
    pub bootstrap_node: Option<BootstrapNode>,
}

impl Network {
    /// The profile called `name`.
    pub fn named(name: &str) -> Result<Network, Error> {
        let (_, text) = PROFILES.iter().find(|(n, _)| *n == name).ok_or_else(|| Error::UnknownNetwork(name.into()))?;
        let path = PathBuf::from(format!("networks/{name}.toml"));
        let profile: Profile = from_toml(text, &path)?;
        if profile.name != name {
            return Err(Error::Parse { path, at: None, detail: format!("names the network {:?}", profile.name) });
        }
        Ok(Network {
            prefix: format!("/rapport/{name}"),
            name: profile.name,
            bootstrap: profile.bootstrap,
            mdns: profile.mdns,
            bootstrap_node: profile.bootstrap_node,
        })
    }

    /// The profile's settings, as a layer between the config file and the defaults.
    pub fn layer(&self) -> Layer {
        Layer { bootstrap: Some(self.bootstrap.clone()), mdns: Some(self.mdns), ..Layer::default() }
    }

    /// The request-response protocol carrying one signed message per request (spec/protocol.md §11.2).
    pub fn message_protocol(&self) -> String {
        format!("{}/msg/1", self.prefix)
    }

    /// Kademlia's protocol name; never the IPFS DHT's.
    pub fn kad_protocol(&self) -> String {
        format!("{}/kad/1.0.0", self.prefix)
    }

    /// The identify protocol version string.
    pub fn identify_version(&self) -> String {
        format!("{}/id/1", self.prefix)
    }

    /// Gossip topic of public offers.
    pub fn offers_topic(&self) -> String {
        format!("{}/offers/1", self.prefix)
    }

    /// Gossip topic of public intents.
    pub fn intents_topic(&self) -> String {
        format!("{}/intents/1", self.prefix)
    }
}

/// The resolved configuration of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The network profile.
    pub network: Network,
    /// libp2p listen addresses.
    pub listen: Vec<String>,
    /// Local control API address: loopback, unless `api_allow_remote` is set.
    pub api: SocketAddr,
    /// Whether `api` may be an address other hosts can reach.
    pub api_allow_remote: bool,
    /// Bootstrap peers.
    pub bootstrap: Vec<String>,
    /// mDNS discovery.
    pub mdns: bool,
    /// Connection cap.
    pub max_connections: u32,
    /// Per-peer connection cap.
    pub max_connections_per_peer: u32,
    /// Connections kept open: idle ones up to this number are not closed, and known peers are
    /// dialled while there are fewer.
    pub target_peers: u32,
    /// Memory share above which new connections are refused.
    pub max_memory_fraction: f64,
    /// Storage backend.
    pub store: StoreKind,
    /// What the node stores for peers its owner has not answered (spec/node.md §3.1).
    pub quota: Quota,
}

pub use rapport_engine::quota::Quota;

/// The defaults, the lowest layer.
pub fn defaults() -> Layer {
    Layer {
        network: Some("local".into()),
        listen: Some(vec!["/ip4/0.0.0.0/tcp/4710".into(), "/ip4/0.0.0.0/udp/4710/quic-v1".into()]),
        api: Some(SocketAddr::from(([127, 0, 0, 1], 4711))),
        api_allow_remote: Some(false),
        bootstrap: Some(Vec::new()),
        mdns: Some(true),
        max_connections: Some(512),
        max_connections_per_peer: Some(4),
        target_peers: Some(DEFAULT_TARGET_PEERS),
        max_memory_fraction: Some(0.8),
        store: Some(StoreKind::Log),
        max_unanswered_per_key: Some(Quota::default().max_unanswered_per_key),
        max_unanswered_per_peer: Some(Quota::default().max_unanswered_per_peer),
        max_unanswered_bytes: Some(Quota::default().max_unanswered_bytes),
        max_unanswered_per_minute: Some(Quota::default().max_unanswered_per_minute),
        max_messages_per_minute: Some(Quota::default().max_messages_per_minute),
    }
}

impl Config {
    /// Resolves the layers: `overrides` (flags and environment) over `config.toml` in
    /// `data_dir` (if present) over the network profile over the defaults.
    pub fn load(data_dir: &Path, overrides: Layer) -> Result<Config, Error> {
        let file_path = data_dir.join(CONFIG_FILE);
        let text = if file_path.exists() {
            Some(std::fs::read_to_string(&file_path).map_err(|source| Error::Read { path: file_path, source })?)
        } else {
            None
        };
        Config::resolve(data_dir, overrides, text.as_deref())
    }

    /// What [`Config::load`] does once it has read `config.toml` (`file`, its text, or `None`
    /// without one): parses the file, resolves the layers and checks the result.
    pub fn resolve(data_dir: &Path, overrides: Layer, file: Option<&str>) -> Result<Config, Error> {
        let file = match file {
            Some(text) => Layer::parse(text, &data_dir.join(CONFIG_FILE))?,
            None => Layer::default(),
        };
        let above_profile = overrides.or(file);
        let name = above_profile.network.clone().or(defaults().network).unwrap_or_default();
        let network = Network::named(&name)?;
        let explicit_target = above_profile.target_peers.is_some();
        let l = above_profile.or(network.layer()).or(defaults());
        let fraction = l.max_memory_fraction.unwrap_or(0.8);
        let max_connections = l.max_connections.unwrap_or(512);
        // The default target gives way to a smaller connection cap; a target set explicitly
        // above the cap is a mistake.
        let target_peers = l.target_peers.unwrap_or(DEFAULT_TARGET_PEERS).min(if explicit_target {
            u32::MAX
        } else {
            max_connections
        });
        if target_peers > max_connections {
            return Err(Error::Invalid {
                name: "target_peers",
                detail: format!("{target_peers} is above max_connections ({max_connections})"),
            });
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::Invalid { name: "max_memory_fraction", detail: format!("{fraction} is not in (0, 1]") });
        }
        let api = l.api.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let api_allow_remote = l.api_allow_remote.unwrap_or(false);
        // The API holds the node's keys in effect: whoever reaches it with the token acts as the
        // node. Another host reaching it is a decision, never a default.
        if !api.ip().is_loopback() && !api_allow_remote {
            return Err(Error::Invalid {
                name: "api",
                detail: format!(
                    "{api} is not a loopback address; other hosts could reach the control API \
                     (set api_allow_remote = true, or --api-allow-remote, to mean it)"
                ),
            });
        }
        let d = Quota::default();
        let quota = Quota {
            max_unanswered_per_key: l.max_unanswered_per_key.unwrap_or(d.max_unanswered_per_key),
            max_unanswered_per_peer: l.max_unanswered_per_peer.unwrap_or(d.max_unanswered_per_peer),
            max_unanswered_bytes: l.max_unanswered_bytes.unwrap_or(d.max_unanswered_bytes),
            max_unanswered_per_minute: l.max_unanswered_per_minute.unwrap_or(d.max_unanswered_per_minute),
            max_messages_per_minute: l.max_messages_per_minute.unwrap_or(d.max_messages_per_minute),
        };
        // The unanswered quotas may be 0: then strangers cannot open relationships at all.
        if quota.max_messages_per_minute == 0 {
            return Err(Error::Invalid {
                name: "max_messages_per_minute",
                detail: "0 would refuse every message, in every relationship (block keys instead)".into(),
            });
        }
        Ok(Config {
            data_dir: data_dir.into(),
            network,
            listen: l.listen.unwrap_or_default(),
            api,
            api_allow_remote,
            bootstrap: l.bootstrap.unwrap_or_default(),
            mdns: l.mdns.unwrap_or(true),
            max_connections,
            max_connections_per_peer: l.max_connections_per_peer.unwrap_or(4),
            target_peers,
            max_memory_fraction: fraction,
            store: l.store.unwrap_or(StoreKind::Log),
            quota,
        })
    }
}

/// The text `rapport init` writes: the network and, commented out, every other default.
pub fn initial_file(network: &str) -> String {
    format!(
        "# Rapport node configuration. Flags and RAPPORT_* variables override these settings.\n\
         network = {network:?}\n\
         # listen = [\"/ip4/0.0.0.0/tcp/4710\", \"/ip4/0.0.0.0/udp/4710/quic-v1\"]\n\
         # api = \"127.0.0.1:4711\"\n\
         # api_allow_remote = false\n\
         # bootstrap = []\n\
         # mdns = true\n\
         # max_connections = 512\n\
         # max_connections_per_peer = 4\n\
         # target_peers = 32\n\
         # max_memory_fraction = 0.8\n\
         # store = \"log\"\n\
         # What strangers may make this node store (relationships awaiting your first answer):\n\
         # max_unanswered_per_key = 16\n\
         # max_unanswered_per_peer = 64\n\
         # max_unanswered_bytes = 262144\n\
         # max_unanswered_per_minute = 10\n\
         # max_messages_per_minute = 12000\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_resolve_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "network = \"testnet\"\nmdns = false\nmax_connections = 9\n")
            .unwrap();
        let flags = Layer { max_connections: Some(3), ..Layer::default() };
        let c = Config::load(dir.path(), flags).unwrap();
        assert_eq!(c.max_connections, 3, "flags beat the file");
        assert!(!c.mdns, "the file beats the profile");
        assert_eq!(c.bootstrap, Network::named("testnet").unwrap().bootstrap, "the profile beats the defaults");
        assert_eq!(c.network.name, "testnet");
        assert_eq!(c.network.kad_protocol(), "/rapport/testnet/kad/1.0.0");
        assert_eq!(c.max_connections_per_peer, 4, "defaults fill the rest");
        assert_eq!(c.target_peers, 3, "the default target gives way to the cap");
        assert_eq!(c.api, SocketAddr::from(([127, 0, 0, 1], 4711)));
    }

    #[test]
    fn the_initial_file_parses_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), initial_file("local")).unwrap();
        assert_eq!(Config::load(dir.path(), Layer::default()).unwrap().network.name, "local");
        std::fs::write(dir.path().join(CONFIG_FILE), "mdsn = true\n").unwrap();
        assert!(matches!(Config::load(dir.path(), Layer::default()), Err(Error::Parse { .. })));
        std::fs::write(dir.path().join(CONFIG_FILE), "network = \"mainnet\"\n").unwrap();
        assert!(matches!(Config::load(dir.path(), Layer::default()), Err(Error::UnknownNetwork(_))));
        std::fs::write(dir.path().join(CONFIG_FILE), "max_memory_fraction = 1.5\n").unwrap();
        assert!(matches!(Config::load(dir.path(), Layer::default()), Err(Error::Invalid { .. })));
    }

    /// A key given twice is refused, not resolved by the last one; errors name file, line and key.
    #[test]
    fn duplicate_keys_are_refused_and_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, "network = \"local\"\nmdns = true\n\nmdns = false\n").unwrap();
        let e = Config::load(dir.path(), Layer::default()).unwrap_err();
        match &e {
            Error::Parse { at: Some(at), detail, .. } => {
                assert_eq!((at.line, at.key.as_str()), (4, "mdns"), "{e}");
                assert!(detail.contains("duplicate"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains(&format!("{}:4", path.display())) && text.contains("\"mdns\""), "{text}");

        std::fs::write(&path, "network = \"local\"\nmax_connections = \"many\"\n").unwrap();
        let e = Config::load(dir.path(), Layer::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Parse { at: Some(At { line: 2, key, .. }), .. } if key == "max_connections"),
            "{e:?}"
        );
        std::fs::write(&path, "[network]\nname = 1\n").unwrap();
        assert!(matches!(Config::load(dir.path(), Layer::default()), Err(Error::Parse { at: Some(_), .. })));
    }

    /// The API stays on loopback unless the operator says otherwise, in so many words.
    #[test]
    fn a_remote_api_address_needs_api_allow_remote() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Layer { api: Some(SocketAddr::from(([0, 0, 0, 0], 4711))), ..Layer::default() };
        let e = Config::load(dir.path(), remote.clone()).unwrap_err();
        assert!(matches!(e, Error::Invalid { name: "api", .. }), "{e:?}");
        assert!(e.to_string().contains("api_allow_remote"), "{e}");
        let v6 = Layer { api: Some("[::]:4711".parse().unwrap()), ..Layer::default() };
        assert!(matches!(Config::load(dir.path(), v6), Err(Error::Invalid { name: "api", .. })));
        let allowed = Layer { api_allow_remote: Some(true), ..remote.clone() };
        let c = Config::load(dir.path(), allowed).unwrap();
        assert!(c.api_allow_remote && !c.api.ip().is_loopback());
        // The file can allow it too, and loopback needs nothing.
        std::fs::write(dir.path().join(CONFIG_FILE), "api_allow_remote = true\n").unwrap();
        assert!(Config::load(dir.path(), remote).unwrap().api_allow_remote);
        std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
        let v6_loopback = Layer { api: Some("[::1]:4711".parse().unwrap()), ..Layer::default() };
        assert!(!Config::load(dir.path(), v6_loopback).unwrap().api_allow_remote);
    }

    #[test]
    fn profiles_come_from_the_networks_files() {
        let local = Network::named("local").unwrap();
        assert!(local.bootstrap.is_empty() && local.mdns && local.bootstrap_node.is_none());
        let testnet = Network::named("testnet").unwrap();
        assert!(testnet.mdns);
        assert_eq!(testnet.bootstrap.len(), 1);
    }

    /// The published bootstrap key is the one behind the bootstrap address's peer id.
    #[cfg(feature = "daemon")]
    #[test]
    fn the_testnet_bootstrap_key_matches_its_address() {
        let testnet = Network::named("testnet").unwrap();
        let node = testnet.bootstrap_node.clone().unwrap();
        let key: [u8; 32] = hex::decode(&node.key).unwrap().try_into().unwrap();
        let identity = crate::identity::Identity::from_key(ed25519_dalek::SigningKey::from_bytes(&key)).unwrap();
        let address: libp2p::Multiaddr = testnet.bootstrap[0].parse().unwrap();
        assert_eq!(address.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(identity.peer_id())));
        assert!(node.listen.iter().any(|l| testnet.bootstrap[0].starts_with(l.as_str())), "{node:?}");
    }

    #[test]
    fn profiles_fill_in_below_the_file() {
        let testnet = Network::named("testnet").unwrap();
        // Below the file, the profile fills in what the file leaves out.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "network = \"testnet\"\n").unwrap();
        let c = Config::load(dir.path(), Layer::default()).unwrap();
        assert_eq!(c.bootstrap, testnet.bootstrap);
        assert!(c.mdns);
        let flags = Layer { bootstrap: Some(Vec::new()), mdns: Some(false), ..Layer::default() };
        let c = Config::load(dir.path(), flags).unwrap();
        assert!(c.bootstrap.is_empty() && !c.mdns, "flags beat the profile");
        assert!(matches!(
            Config::load(dir.path(), Layer { target_peers: Some(600), ..Layer::default() }),
            Err(Error::Invalid { name: "target_peers", .. })
        ));
    }
}

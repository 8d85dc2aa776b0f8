//! `rapport`: the Rapport node daemon and its CLI. Parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rapport_node::api::{ConnectRequest, OfferRequest};
use rapport_node::client::Client;
use rapport_node::config::{Config, Layer, Network};
use rapport_protocol::{Money, Offer, Price, PriceModel};
use serde_json::Value;

/// A Rapport node: customer–vendor relationships over signed messages on libp2p.
#[derive(Debug, Parser)]
#[command(name = "rapport", version, about)]
struct Cli {
    /// Data directory (default: the platform's data directory for Rapport).
    #[arg(long, global = true, env = "RAPPORT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    Upfront,
    PerUsage,
    PerImpact,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: config.toml, an Ed25519 key and an API token (both mode 0600).
    Init {
        /// Network profile the node joins.
        #[arg(long, env = "RAPPORT_NETWORK", default_value = "local")]
        network: String,
        /// Rewrite the config and token of an existing node; its key is kept.
        #[arg(long)]
        force: bool,
    },
    /// Run the node daemon until SIGINT or SIGTERM.
    Run {
        /// Network profile.
        #[arg(long, env = "RAPPORT_NETWORK")]
        network: Option<String>,
        /// libp2p listen address (repeatable).
        #[arg(long, env = "RAPPORT_LISTEN", value_delimiter = ',')]
        listen: Option<Vec<String>>,
        /// Control API address (loopback).
        #[arg(long, env = "RAPPORT_API")]
        api: Option<SocketAddr>,
        /// Peer to dial at start (repeatable).
        #[arg(long, env = "RAPPORT_BOOTSTRAP", value_delimiter = ',')]
        bootstrap: Option<Vec<String>>,
        /// Local discovery by mDNS.
        #[arg(long, env = "RAPPORT_MDNS")]
        mdns: Option<bool>,
        /// Log format.
        #[arg(long, env = "RAPPORT_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Peer id, key id, listen addresses, peers, outbox and relationships of the running node.
    Status,
    /// The node's peer id and key id.
    Id,
    /// Connected peers.
    Peers,
    /// Dial a peer's multiaddr.
    Connect {
        /// For instance /ip4/127.0.0.1/tcp/4710/p2p/12D3Koo…
        multiaddr: String,
    },
    /// Send an offer to a customer, opening a relationship.
    Offer {
        /// The customer's key id (hex).
        #[arg(long)]
        to: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Price model.
        #[arg(long, value_enum, default_value = "upfront")]
        model: Model,
        /// Price in minor units.
        #[arg(long)]
        amount: u64,
        /// ISO 4217 currency.
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// Metric, for per-usage and per-impact prices.
        #[arg(long)]
        metric: Option<String>,
        /// Threshold, for per-usage and per-impact prices.
        #[arg(long)]
        threshold: Option<u64>,
    },
    /// Relationships of this node.
    Relationships,
    /// The stored messages of a relationship.
    Log {
        /// Relationship id (hex).
        relationship: String,
    },
}

fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d);
    }
    let dirs = directories::ProjectDirs::from("org", "rapport", "rapport")
        .ok_or_else(|| anyhow::anyhow!("no home directory; pass --data-dir"))?;
    Ok(dirs.data_dir().to_path_buf())
}

/// Prints `value` as JSON, or through `text` for people.
fn show(json: bool, value: &Value, text: impl FnOnce(&Value) -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text(value));
    }
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn client_command(dir: &Path, json: bool, command: Command) -> anyhow::Result<()> {
    let client = Client::for_data_dir(dir)?;
    match command {
        Command::Status => {
            let v: Value = client.get("/v1/status").await?;
            show(json, &v, |v| {
                format!(
                    "peer id      {}\nkey id       {}\nnetwork      {}\nlisten       {}\npeers        {}\noutbox       {}\nrelationships {}",
                    s(v, "peer_id"),
                    s(v, "key_id"),
                    s(v, "network"),
                    v["listen"].as_array().map(|a| a.iter().map(|x| x.as_str().unwrap_or("")).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
                    s(v, "peers"),
                    s(v, "outbox"),
                    v["relationships"],
                )
            });
        }
        Command::Id => {
            let v: Value = client.get("/v1/id").await?;
            show(json, &v, |v| format!("{}\n{}", s(v, "peer_id"), s(v, "key_id")));
        }
        Command::Peers => {
            let v: Value = client.get("/v1/peers").await?;
            show(json, &v, |v| {
                v.as_array()
                    .map(|a| a.iter().map(|p| s(p, "peer_id")).collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default()
            });
        }
        Command::Connect { multiaddr } => {
            let v: Value = client.post("/v1/connect", &ConnectRequest { address: multiaddr }).await?;
            show(json, &v, |v| format!("dialing {}", s(v, "dialing")));
        }
        Command::Offer { to, title, description, model, amount, currency, metric, threshold } => {
            let model = match model {
                Model::Upfront => PriceModel::Upfront,
                Model::PerUsage => PriceModel::PerUsage,
                Model::PerImpact => PriceModel::PerImpact,
            };
            let offer = Offer {
                title,
                description,
                price: Price { model, amount: Money::new(&currency, amount), metric, threshold },
                terms: None,
            };
            let v: Value = client.post("/v1/offer", &OfferRequest { to, offer }).await?;
            show(json, &v, |v| format!("{} {} in relationship {}", s(v, "kind"), s(v, "id"), s(v, "relationship")));
        }
        Command::Relationships => {
            let v: Value = client.get("/v1/relationships").await?;
            show(json, &v, |v| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|r| {
                                format!(
                                    "{}  {:<11} {:<8} {} messages",
                                    s(r, "id"),
                                    s(r, "phase"),
                                    s(r, "role"),
                                    s(r, "messages")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        Command::Log { relationship } => {
            let v: Value = client.get(&format!("/v1/relationships/{relationship}/log")).await?;
            show(json, &v, |v| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| {
                                format!(
                                    "{:>3}  {:<20} {}  from {}",
                                    s(m, "seq"),
                                    s(m, "kind"),
                                    s(m, "id"),
                                    &s(m, "from")[..16.min(s(m, "from").len())]
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        Command::Init { .. } | Command::Run { .. } => anyhow::bail!("not a client command"),
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = data_dir(cli.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Init { network, force } => {
            Network::named(&network)?;
            let init = rapport_node::identity::init(&dir, &network, force)?;
            let peer = init.identity.peer_id();
            let v = serde_json::json!({
                "peer_id": peer.to_string(),
                "key_id": init.identity.key_id().to_hex(),
                "data_dir": dir,
                "new_key": init.new_key,
            });
            show(cli.json, &v, |_| peer.to_string());
            if !cli.json {
                eprintln!(
                    "initialised {} ({} key, network {network})",
                    dir.display(),
                    if init.new_key { "new" } else { "kept" }
                );
            }
            Ok(())
        }
        Command::Run { network, listen, api, bootstrap, mdns, log_format } => {
            init_tracing(log_format);
            let flags = Layer { network, listen, api, bootstrap, mdns, ..Layer::default() };
            let config = Config::load(&dir, flags)?;
            runtime.block_on(rapport_node::daemon::run(config, rapport_node::daemon::signal()))
        }
        command => runtime.block_on(client_command(&dir, cli.json, command)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rapport: {e:#}");
            ExitCode::FAILURE
        }
    }
}

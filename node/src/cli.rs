//! The `rapport` command line (spec/node.md §6): `init` and `run` work on the data directory; every
//! other command is a client of the running daemon's API and prints text, or JSON with
//! `--json`. Failures exit non-zero with one line on stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::api::{ConnectRequest, FindRequest};
use crate::client::Client;
use crate::config::{Config, Layer, Network};

mod describe;
mod export;
mod outgoing;

use outgoing::{outgoing, send};

/// A Rapport node: customer–vendor relationships over signed messages on libp2p.
#[derive(Debug, Parser)]
#[command(name = "rapport", version, about)]
pub struct Cli {
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

/// Where a relationship message goes.
#[derive(Debug, Args)]
struct Target {
    /// The relationship (hex).
    #[arg(long = "rel")]
    relationship: Option<String>,
    /// The other party's key id (hex), to open a new relationship.
    #[arg(long)]
    to: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TestnetAction {
    /// Start the test network's bootstrap node and N nodes on 127.0.0.1, in the background.
    Up {
        /// Nodes besides the bootstrap node.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Where the nodes' data directories go.
        #[arg(long, env = "RAPPORT_TESTNET_DIR")]
        dir: Option<PathBuf>,
        /// mDNS on every node; with false, nodes find each other through the DHT alone.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        mdns: bool,
    },
    /// Stop exactly the processes `testnet up` started.
    Down {
        /// The directory given to `testnet up`.
        #[arg(long, env = "RAPPORT_TESTNET_DIR")]
        dir: Option<PathBuf>,
    },
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
        /// libp2p listen addresses (comma-separated or repeated).
        #[arg(long, env = "RAPPORT_LISTEN", value_delimiter = ',')]
        listen: Option<Vec<String>>,
        /// Control API address; loopback unless --api-allow-remote.
        #[arg(long, env = "RAPPORT_API")]
        api: Option<SocketAddr>,
        /// Let the control API listen on an address other hosts can reach (warned at every start).
        #[arg(long, env = "RAPPORT_API_ALLOW_REMOTE", num_args = 0..=1, default_missing_value = "true")]
        api_allow_remote: Option<bool>,
        /// Peers to dial at start (comma-separated or repeated).
        #[arg(long, env = "RAPPORT_BOOTSTRAP", value_delimiter = ',')]
        bootstrap: Option<Vec<String>>,
        /// Local discovery by mDNS.
        #[arg(long, env = "RAPPORT_MDNS")]
        mdns: Option<bool>,
        /// Connections kept open; known peers are dialled while there are fewer.
        #[arg(long, env = "RAPPORT_TARGET_PEERS")]
        target_peers: Option<u32>,
        /// Log format; the level comes from RUST_LOG.
        #[arg(long, env = "RAPPORT_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Walk a whole relationship between a customer node and a vendor node started on
    /// 127.0.0.1 in temporary directories, from intent to closure; exit 0 only if every step held.
    Demo,
    /// The local test network: a bootstrap node and N nodes, each its own process.
    Testnet {
        #[command(subcommand)]
        action: TestnetAction,
    },
    /// Peer id, key id, listen addresses, peers, outbox and relationships of the running node.
    Status,
    /// The node's peer id and key id.
    Id,
    /// Connected peers.
    Peers {
        /// Also list the peers known from the DHT but not connected now.
        #[arg(long)]
        all: bool,
    },
    /// Find a peer by its peer id through the DHT alone, and connect to it.
    Find {
        /// For instance 12D3Koo…
        peer_id: String,
    },
    /// Dial a peer's multiaddr.
    Connect {
        /// For instance /ip4/127.0.0.1/tcp/4710/p2p/12D3Koo…
        multiaddr: String,
    },
    /// An offer: to a customer (--to, opening a relationship) or public (no --to).
    Offer {
        /// The customer's key id (hex); without it the offer is published.
        #[arg(long)]
        to: Option<String>,
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
        /// Free allowance or trigger level, for per-usage and per-impact prices.
        #[arg(long)]
        threshold: Option<u64>,
    },
    /// Publish an intent: a request for proposals.
    Intent {
        /// What you are looking for.
        #[arg(long)]
        title: String,
        /// Details.
        #[arg(long, default_value = "")]
        description: String,
        /// Tags vendors filter on (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Public offers and intents heard on the network.
    Public,
    /// Propose, accept or reject terms.
    Terms {
        #[command(subcommand)]
        action: TermsAction,
    },
    /// Grant or revoke consent.
    Consent {
        #[command(subcommand)]
        action: ConsentAction,
    },
    /// Report usage or impact.
    Report {
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Countersign the other party's usage or impact report.
    Countersign {
        /// The relationship (hex).
        rel: String,
        /// The report's message id (hex).
        report: String,
    },
    /// Share data or an insight: the log carries a salted commitment, the data travels beside it
    /// (spec §5.9).
    Share {
        /// The relationship (hex).
        rel: String,
        /// The file to share.
        #[arg(long)]
        file: PathBuf,
        /// `data` or `insight` (either party, in an active relationship, under a live consent
        /// grant), or `export` (the vendor, during separation: the customer's data back).
        #[arg(long, default_value = "data")]
        content: String,
        /// Purpose, a DPV identifier or extension URI.
        #[arg(long)]
        purpose: Option<String>,
        /// Data categories (repeatable).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// Media type of the file.
        #[arg(long, default_value = "application/octet-stream")]
        media_type: String,
    },
    /// Introduce the other party to a third party. The message body is JSON (spec §5.10).
    Introduce {
        /// The relationship (hex).
        rel: String,
        /// The introduction as JSON: `{"party": {"name": …}, "offering": …, "commission": {"basis": "none"}}`.
        #[arg(long)]
        body: String,
    },
    /// Give notice of a friendly separation. The body is JSON (spec §5.11).
    Separate {
        /// The relationship (hex).
        rel: String,
        /// The notice as JSON.
        #[arg(long)]
        body: String,
    },
    /// State what became of each data category. The body is JSON (spec §5.12).
    Dispose {
        /// The relationship (hex).
        rel: String,
        /// The statement as JSON.
        #[arg(long)]
        body: String,
    },
    /// Confirm a disposition statement and close the relationship.
    Close {
        /// The relationship (hex).
        rel: String,
        /// The disposition statement's message id (hex).
        statement: String,
    },
    /// Send any message kind with a JSON body (spec §5), for kinds and fields the named
    /// commands do not cover.
    Send {
        /// The kind, e.g. `terms_proposal`.
        kind: String,
        #[command(flatten)]
        target: Target,
        /// The body as JSON.
        #[arg(long)]
        body: String,
    },
    /// Relationships of this node.
    Relationships,
    /// A relationship's state.
    Show {
        /// Relationship id (hex).
        rel: String,
    },
    /// The stored messages of a relationship.
    Log {
        /// Relationship id (hex).
        rel: String,
    },
    /// Write a relationship's portable bundle: both sides' signed messages and a manifest.
    Export {
        /// Relationship id (hex).
        rel: String,
        /// The file to write, or `-` for standard output. An existing file is refused unless
        /// --force; a file inside the data directory always is.
        #[arg(long)]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Verify an export bundle offline (no daemon needed); exit 0 only if it verifies, the
    /// exporter's seal included (spec/node.md §7.3).
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// Accept a bundle without a seal (rapport-export/1): its envelopes and log are verified,
        /// but nothing shows that messages were not dropped or its manifest not edited.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Refuse every message from a key, in every relationship, before it is stored; its
    /// gossiped offers are dropped too. Saved in the data directory's `blocked` file.
    Block {
        /// The key id (hex).
        key: String,
    },
    /// Hear from a blocked key again.
    Unblock {
        /// The key id (hex).
        key: String,
    },
    /// The blocked keys.
    Blocked,
    /// Send every message waiting in the outbox now, without waiting out its backoff (after
    /// a peer you know is back, or a network change).
    Retry,
    /// Salvage a damaged log store, with the daemon stopped: every whole frame is copied into a
    /// new log, which replaces the damaged file; that file is kept beside it.
    Repair,
}

#[derive(Debug, Subcommand)]
enum TermsAction {
    /// Propose terms, given as JSON (spec §5.3 `terms`), in a relationship or opening one.
    Propose {
        #[command(flatten)]
        target: Target,
        /// Your role: customer or vendor.
        #[arg(long, required_unless_present = "example")]
        role: Option<String>,
        /// The terms as JSON, or @FILE.
        #[arg(long, required_unless_present = "example")]
        terms: Option<String>,
        /// Print a valid terms document to start from, and send nothing.
        #[arg(long)]
        example: bool,
    },
    /// Accept a proposal (or a counter-proposal) by its message id.
    Accept {
        /// The relationship (hex).
        rel: String,
        /// The proposal's message id (hex).
        proposal: String,
    },
    /// Reject a proposal, optionally with counter-terms.
    Reject {
        /// The relationship (hex).
        rel: String,
        /// The proposal's message id (hex).
        proposal: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Counter-terms as JSON, or @FILE.
        #[arg(long)]
        counter: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConsentAction {
    /// Grant consent for purposes and data categories.
    Grant {
        /// The relationship (hex).
        rel: String,
        /// Purposes (repeatable), e.g. dpv:ServiceProvision.
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// Data categories (repeatable), e.g. pd:Location.
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
        /// Allow sharing with third parties.
        #[arg(long)]
        third_party: bool,
        /// Retention in days.
        #[arg(long, default_value_t = 90)]
        retention_days: u64,
        /// Expiry, Unix ms.
        #[arg(long)]
        expires: Option<u64>,
    },
    /// Revoke a grant; it takes effect on receipt.
    Revoke {
        /// The relationship (hex).
        rel: String,
        /// The grant's message id (hex).
        grant: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The relationship (hex).
    rel: String,
    /// What was measured.
    #[arg(long)]
    metric: String,
    /// Its unit.
    #[arg(long)]
    unit: String,
    /// Start of the period, Unix ms.
    #[arg(long)]
    start: u64,
    /// End of the period, Unix ms.
    #[arg(long)]
    end: u64,
    /// The value.
    #[arg(long)]
    value: u64,
}

#[derive(Debug, Subcommand)]
enum ReportKind {
    /// A usage report.
    Usage(ReportArgs),
    /// An impact report.
    Impact(ReportArgs),
}

fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d);
    }
    let dirs = directories::ProjectDirs::from("org", "rapport", "rapport")
        .ok_or_else(|| anyhow::anyhow!("no home directory; pass --data-dir"))?;
    Ok(dirs.data_dir().to_path_buf())
}

/// JSON given inline or as `@FILE`.
fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The consent lines of `rapport show`.
fn consents(v: &Value) -> String {
    let mut out = String::new();
    for c in v["consents"].as_array().into_iter().flatten() {
        let scope = &c["scope"];
        let list =
            |k: &str| scope[k].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
        let state = match c["revoked_by"].as_str() {
            Some(r) => format!("revoked by {r:.16}"),
            None => "in force".into(),
        };
        out += &format!(
            "\nconsent        {:.16}  {}  purposes {}; categories {}; third parties {}",
            s(c, "grant"),
            state,
            list("purposes").unwrap_or_default(),
            list("categories").unwrap_or_default(),
            scope["third_party_sharing"]
        );
    }
    out
}

fn lines(v: &Value, each: impl Fn(&Value) -> String) -> String {
    v.as_array().map(|a| a.iter().map(each).collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

/// Renders a command's JSON result for people.
type Render = Box<dyn Fn(&Value) -> String>;

async fn client_command(dir: &Path, as_json: bool, command: Command) -> anyhow::Result<()> {
    let client = Client::for_data_dir(dir)?;
    let (value, text): (Value, Render) = if let Some(draft) = outgoing(dir, &command)? {
        let v = send(&client, &draft).await?;
        (
            v,
            Box::new(|v| {
                let rel = s(v, "relationship");
                let place = if rel.is_empty() { "published".to_owned() } else { format!("in relationship {rel}") };
                format!("{} {} {place}", s(v, "kind"), s(v, "id"))
            }),
        )
    } else {
        match command {
            Command::Status => (
                client.get("/v1/status").await?,
                Box::new(|v| {
                    let listen = v["listen"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "));
                    format!(
                        "peer id        {}\nkey id         {}\nnetwork        {}\nlisten         {}\npeers          {}\noutbox         {}\nrelationships  {}",
                        s(v, "peer_id"),
                        s(v, "key_id"),
                        s(v, "network"),
                        listen.unwrap_or_default(),
                        s(v, "peers"),
                        s(v, "outbox"),
                        v["relationships"],
                    ) + &describe::damage(v)
                }),
            ),
            Command::Id => {
                (client.get("/v1/id").await?, Box::new(|v| format!("{}\n{}", s(v, "peer_id"), s(v, "key_id"))))
            }
            Command::Peers { all } => (
                client.get(if all { "/v1/peers?all=true" } else { "/v1/peers" }).await?,
                Box::new(|v| {
                    lines(v, |p| {
                        let state = if p["connected"] == true { "connected" } else { "known" };
                        format!("{}  {:<9}  {}", s(p, "peer_id"), state, s(p, "address"))
                    })
                }),
            ),
            Command::Find { peer_id } => (
                client.post("/v1/find", &FindRequest { peer_id }).await?,
                Box::new(|v| {
                    let addresses: Vec<&str> =
                        v["addresses"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    format!("found {} at {}", s(v, "peer_id"), addresses.join(" "))
                }),
            ),
            Command::Connect { multiaddr } => (
                client.post("/v1/connect", &ConnectRequest { address: multiaddr }).await?,
                Box::new(|v| format!("connected to {} at {}", s(v, "connected"), s(v, "address"))),
            ),
            Command::Public => (
                client.get("/v1/public").await?,
                Box::new(|v| {
                    lines(v, |m| {
                        format!(
                            "{:<7} {}  {}\n        id {}  from {:.16}",
                            s(m, "kind"),
                            describe::date(m["created_at"].as_u64().unwrap_or(0)),
                            describe::summary(&s(m, "kind"), &m["body"]),
                            s(m, "id"),
                            s(m, "from")
                        )
                    })
                }),
            ),
            Command::Relationships => (
                client.get("/v1/relationships").await?,
                Box::new(|v| {
                    lines(v, |r| {
                        format!(
                            "{}  {:<11} {:<8} {} messages",
                            s(r, "id"),
                            s(r, "phase"),
                            s(r, "role"),
                            s(r, "messages")
                        )
                    })
                }),
            ),
            Command::Show { rel } => {
                let all: Value = client.get("/v1/relationships").await?;
                let found = all.as_array().and_then(|a| a.iter().find(|r| s(r, "id") == rel).cloned());
                let mut v = found.ok_or_else(|| anyhow::anyhow!("no relationship {rel}"))?;
                v["log"] = client.get(&format!("/v1/relationships/{rel}/log")).await?;
                (
                    v,
                    Box::new(|v| {
                        let first = &v["log"][0];
                        let since = first["created_at"].as_u64().map(describe::datetime).unwrap_or_default();
                        let opened = describe::summary(&s(first, "kind"), &first["body"]);
                        format!(
                            "relationship   {}\nphase          {}\nrole           {}\ncounterparty   {}\nsince          {}\nopened with    {} {}\nmessages       {}\nreceipts       {}",
                            s(v, "id"),
                            s(v, "phase"),
                            s(v, "role"),
                            s(v, "counterparty"),
                            since,
                            s(first, "kind"),
                            opened,
                            s(v, "messages"),
                            s(v, "acknowledgements")
                        ) + &consents(v)
                            + "\n\n"
                            + &lines(&v["log"], describe::timeline_entry)
                    }),
                )
            }
            Command::Log { rel } => (
                client.get(&format!("/v1/relationships/{rel}/log")).await?,
                Box::new(|v| lines(v, describe::timeline_entry)),
            ),
            Command::Export { rel, out, force } => {
                let dest = export::check(&out, dir, force)?;
                let bundle: Value = client.get(&format!("/v1/relationships/{rel}/export")).await?;
                let text = serde_json::to_string_pretty(&bundle)? + "\n";
                let path = match dest {
                    export::Destination::Stdout => {
                        // Standard output carries the bundle alone, so it can be piped.
                        print!("{text}");
                        return Ok(());
                    }
                    export::Destination::File(path) => path,
                };
                export::write(&path, text.as_bytes(), force)?;
                let n = bundle["messages"].as_array().map_or(0, Vec::len);
                let v = json!({ "file": out, "messages": n });
                (v, Box::new(|v| format!("wrote {} messages to {}", s(v, "messages"), s(v, "file"))))
            }
            Command::Block { key } => (
                client.put(&format!("/v1/blocked/{key}")).await?,
                Box::new(|v| {
                    let again = if v["changed"] == true { "" } else { " (already)" };
                    format!("blocked {}{again}", s(v, "key"))
                }),
            ),
            Command::Unblock { key } => (
                client.delete(&format!("/v1/blocked/{key}")).await?,
                Box::new(|v| {
                    let again = if v["changed"] == true { "" } else { " (was not blocked)" };
                    format!("unblocked {}{again}", s(v, "key"))
                }),
            ),
            Command::Blocked => (
                client.get("/v1/blocked").await?,
                Box::new(|v| lines(&v["blocked"], |k| k.as_str().unwrap_or_default().to_owned())),
            ),
            Command::Retry => (
                client.post("/v1/outbox/retry", &serde_json::json!({})).await?,
                Box::new(|v| match v["waiting"].as_u64() {
                    Some(0) => "the outbox is empty".to_owned(),
                    Some(n) => format!("{n} waiting messages are due now"),
                    None => v.to_string(),
                }),
            ),
            _ => anyhow::bail!("not a client command"),
        }
    };
    if as_json {
        println!("{value}");
    } else {
        println!("{}", text(&value));
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // Kademlia warns at every periodic bootstrap of a node that knows no peer yet, as a
        // lone node on the `local` network never does; its errors still show.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_kad=error"));
    // Colour only for a terminal: a log redirected to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `rapport testnet up|down`.
fn testnet(action: TestnetAction, json: bool) -> anyhow::Result<()> {
    match action {
        TestnetAction::Up { nodes, dir, mdns } => {
            let dir = dir.unwrap_or_else(crate::testnet::default_dir);
            let bin = std::env::current_exe()?;
            let state = crate::testnet::up(&crate::testnet::Up { dir: dir.clone(), nodes, mdns, bin })?;
            if json {
                println!("{}", serde_json::to_string(&state)?);
                return Ok(());
            }
            println!("{:<10} {:<53} {:<16} {:>7}", "NAME", "PEER ID", "API", "PID");
            for n in &state.nodes {
                println!("{:<10} {:<53} {:<16} {:>7}", n.name, n.peer_id, n.api.as_deref().unwrap_or("-"), n.pid);
            }
            let first = dir.join("node-1");
            eprintln!(
                "test network up in {}: talk to a node with `rapport --data-dir {} peers`; stop it with `rapport testnet down`",
                dir.display(),
                first.display()
            );
            Ok(())
        }
        TestnetAction::Down { dir } => {
            let dir = dir.unwrap_or_else(crate::testnet::default_dir);
            let stopped = crate::testnet::down(&dir)?;
            if json {
                println!("{}", serde_json::to_string(&stopped)?);
            } else {
                println!("stopped {} processes; their logs stay in {}", stopped.len(), dir.display());
            }
            Ok(())
        }
    }
}

/// Runs one command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = data_dir(cli.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Init { network, force } => {
            Network::named(&network)?;
            let init = crate::identity::init(&dir, &network, force)?;
            let peer = init.identity.peer_id();
            if cli.json {
                let v = json!({
                    "peer_id": peer.to_string(),
                    "key_id": init.identity.key_id().to_hex(),
                    "data_dir": dir,
                    "new_key": init.new_key,
                });
                println!("{v}");
            } else {
                println!("{peer}");
                let key = if init.new_key { "new" } else { "kept" };
                eprintln!("initialised {} ({key} key, network {network})", dir.display());
            }
            Ok(())
        }
        Command::Run { network, listen, api, api_allow_remote, bootstrap, mdns, target_peers, log_format } => {
            init_tracing(log_format);
            let flags =
                Layer { network, listen, api, api_allow_remote, bootstrap, mdns, target_peers, ..Layer::default() };
            let config = Config::load(&dir, flags)?;
            runtime.block_on(crate::daemon::run(config, crate::daemon::signal()))
        }
        Command::Demo => {
            // The nodes' own logs would drown the story; RUST_LOG brings them back.
            let filter =
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,libp2p=error".into());
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
            runtime.block_on(crate::demo::run())
        }
        Command::Testnet { action } => testnet(action, cli.json),
        Command::Repair => {
            let config = Config::load(&dir, Layer::default())?;
            if config.store != crate::config::StoreKind::Log {
                anyhow::bail!("only the log store can be repaired (this node's store is {:?})", config.store);
            }
            // The daemon must not be writing the file being replaced.
            let _lock = crate::daemon::DataDirLock::take(&dir)?;
            let repaired = crate::store::repair(&dir.join(config.store.dir()))?;
            if cli.json {
                println!("{}", serde_json::to_string(&repaired)?);
            } else if let Some(kept) = &repaired.kept {
                let dropped: u64 = repaired.dropped.iter().map(|d| d.len).sum();
                let mut rels: Vec<String> =
                    repaired.dropped.iter().flat_map(|d| d.relationships.iter().map(|r| r.to_hex())).collect();
                rels.dedup();
                println!(
                    "repaired: kept {} whole frames ({} bytes), dropped {} damaged stretch(es), {dropped} bytes{}; \
                     the damaged file is {}",
                    repaired.frames,
                    repaired.bytes,
                    repaired.dropped.len(),
                    if rels.is_empty() { String::new() } else { format!(", naming relationships {}", rels.join(", ")) },
                    kept.display()
                );
            } else {
                println!("nothing to repair: {} whole frames, no damage", repaired.frames);
            }
            Ok(())
        }
        Command::Terms { action: TermsAction::Propose { example: true, .. } } => {
            println!("{}", serde_json::to_string_pretty(&describe::example_terms())?);
            Ok(())
        }
        Command::Verify { file, allow_unsigned } => export::verify(&file, allow_unsigned, cli.json),
        command => runtime.block_on(client_command(&dir, cli.json, command)),
    }
}

#[cfg(test)]
mod tests;

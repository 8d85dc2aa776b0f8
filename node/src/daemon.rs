//! `rapport run`: the daemon (spec/node.md). Opens the store, builds the swarm, starts the event
//! loop and the control API, writes the `api` file so that CLI commands find the API, and on
//! shutdown stops accepting, flushes and closes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::Multiaddr;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{Config, StoreKind, API_FILE, LOCK_FILE};
use crate::engine::{self, Engine};
use crate::identity;
use crate::metrics::Metrics;
use crate::store::{Disk, Log, Store};
use crate::{api, network};

/// Removes the `api` file when the daemon stops, however it stops.
struct ApiFile(PathBuf);

impl Drop for ApiFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An exclusive `flock` on the data directory's `lock` file, held while the daemon runs: a
/// second daemon on the same directory would write the same store. The kernel releases it when
/// the process ends, however it ends, so a daemon killed with SIGKILL leaves nothing to clean up.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl DataDirLock {
    /// Takes the lock on `data_dir`, or says which process holds it.
    pub fn take(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        use std::io::Write as _;

        let path = data_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let mut lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = pid.trim();
                anyhow::bail!(
                    "another rapport daemon{} is running on {}",
                    if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
                    data_dir.display()
                );
            }
            Err((_, e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
        };
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        Ok(DataDirLock { _lock: lock })
    }
}

fn addrs(list: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    list.iter().map(|a| a.parse().map_err(|e| anyhow::anyhow!("bad {what} address {a:?}: {e}"))).collect()
}

/// Opens the configured backend. A data directory that holds only the other backend's records
/// is refused, rather than started empty beside them.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let kind = config.store;
    let other = match kind {
        StoreKind::Log => StoreKind::Sled,
        StoreKind::Sled => StoreKind::Log,
    };
    let (dir, other_dir) = (config.data_dir.join(kind.dir()), config.data_dir.join(other.dir()));
    if !dir.exists() && other_dir.exists() {
        anyhow::bail!(
            "{} holds a {other:?} store ({}), but the configuration says store = {:?}; set store = {:?} in config.toml",
            config.data_dir.display(),
            other_dir.display(),
            format!("{kind:?}").to_lowercase(),
            format!("{other:?}").to_lowercase(),
        );
    }
    Ok(match kind {
        StoreKind::Log => Arc::new(Log::open(&dir)?),
        StoreKind::Sled => Arc::new(Disk::open(&dir)?),
    })
}

/// Runs the node of `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    identity::check_data_dir(&config.data_dir)?;
    let _lock = DataDirLock::take(&config.data_dir)?;
    let identity = identity::load(&config.data_dir)?;
    let token = identity::load_token(&config.data_dir)?;
    let listen = addrs(&config.listen, "listen")?;
    let bootstrap = addrs(&config.bootstrap, "bootstrap")?;
    let store = open_store(&config)?;
    let mut registry = Registry::default();
    let mut swarm = network::swarm(identity.keypair.clone(), &config, &mut registry)?;
    let metrics = Arc::new(Metrics::new(&mut registry));
    engine::start(&mut swarm, store.as_ref(), &listen, &bootstrap)?;
    let peer_id = identity.peer_id();
    let (engine, handle) = Engine::new(swarm, store.clone(), identity, &config, metrics)?;

    let listener =
        TcpListener::bind(config.api).await.map_err(|e| anyhow::anyhow!("API address {}: {e}", config.api))?;
    let api_addr = listener.local_addr()?;
    let api_file = config.data_dir.join(API_FILE);
    write_api_file(&api_file, api_addr)?;
    let _api_file = ApiFile(api_file);
    info!(%peer_id, api = %api_addr, network = %config.network.name, "node started");
    if !api_addr.ip().is_loopback() {
        warn!(
            api = %api_addr,
            "the control API listens on an address other hosts can reach (api_allow_remote); \
             anyone who obtains the token can act as this node"
        );
    }

    let state = api::AppState {
        handle,
        store,
        token: token.into(),
        registry: Arc::new(registry),
        any_host: config.api_allow_remote,
    };
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(async {
                let _ = api_stopped.await;
            })
            .await
    });
    // The loop runs until the shutdown signal; then the API stops taking requests.
    engine.run(shutdown).await;
    let _ = stop_api.send(());
    server.await??;
    info!("node stopped");
    Ok(())
}

/// Writes the API's address for the CLI, readable by the owner alone: a fresh file, renamed
/// over any left by a daemon that was killed.
fn write_api_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(format!("{addr}\n").as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layer;

    #[test]
    fn a_data_dir_of_the_other_backend_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Layer { store: Some(StoreKind::Sled), ..Layer::default() };
        let config = Config::load(dir.path(), sled.clone()).unwrap();
        drop(open_store(&config).unwrap());
        let log = Config::load(dir.path(), Layer::default()).unwrap();
        assert_eq!(log.store, StoreKind::Log, "the default");
        let err = open_store(&log).err().expect("a sled data dir opened as a log store").to_string();
        assert!(err.contains("set store = \"sled\""), "{err}");
        assert!(!dir.path().join("log").exists(), "nothing created beside the sled store");
        // sled releases its file lock from a background thread after the drop: a bounded wait.
        let reopened = (0..50).find_map(|_| {
            open_store(&config).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                None
            })
        });
        assert!(reopened.is_some(), "the sled store opens again");
    }
}

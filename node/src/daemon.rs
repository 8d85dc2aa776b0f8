//! `rapport run`: the daemon (spec/node.md). Opens the store, builds the swarm, starts the event
//! loop and the control API, writes the `api` file so that CLI commands find the API, and on
//! shutdown stops accepting, flushes and closes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::Multiaddr;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{Config, API_FILE, DB_DIR};
use crate::engine::{self, Engine};
use crate::identity;
use crate::metrics::Metrics;
use crate::store::{Disk, Store};
use crate::{api, network};

/// Removes the `api` file when the daemon stops, however it stops.
struct ApiFile(PathBuf);

impl Drop for ApiFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn addrs(list: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    list.iter().map(|a| a.parse().map_err(|e| anyhow::anyhow!("bad {what} address {a:?}: {e}"))).collect()
}

/// Runs the node of `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let identity = identity::load(&config.data_dir)?;
    let token = identity::load_token(&config.data_dir)?;
    let listen = addrs(&config.listen, "listen")?;
    let bootstrap = addrs(&config.bootstrap, "bootstrap")?;
    let store: Arc<dyn Store> = Arc::new(Disk::open(&config.data_dir.join(DB_DIR))?);
    let mut registry = Registry::default();
    let mut swarm = network::swarm(identity.keypair.clone(), &config, &mut registry)?;
    let metrics = Arc::new(Metrics::new(&mut registry));
    engine::start(&mut swarm, &listen, &bootstrap)?;
    let peer_id = identity.peer_id();
    let (engine, handle) = Engine::new(swarm, store.clone(), identity, &config.network, metrics)?;

    let listener =
        TcpListener::bind(config.api).await.map_err(|e| anyhow::anyhow!("API address {}: {e}", config.api))?;
    let api_addr = listener.local_addr()?;
    let api_file = config.data_dir.join(API_FILE);
    std::fs::write(&api_file, format!("{api_addr}\n"))?;
    let _api_file = ApiFile(api_file);
    info!(%peer_id, api = %api_addr, network = %config.network.name, "node started");

    let state = api::AppState { handle, store, token: token.into(), registry: Arc::new(registry) };
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

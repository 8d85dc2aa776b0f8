//! The local control API (spec/node.md §5): HTTP/JSON on a loopback address, every route behind the
//! bearer token in the data directory's `api-token` file. The CLI is a client of it; the
//! OpenAPI document is served at `/openapi.json`.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rapport_protocol::Message;
use serde::{Deserialize, Serialize};

pub use self::requests::{ConnectRequest, FindRequest, SendRequest};
use crate::engine::{self, Command, Handle};
use crate::store::Store;

pub mod requests;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Commands to the event loop.
    pub handle: Handle,
    /// The store, for reads that need not go through the loop.
    pub store: Arc<dyn Store>,
    /// The bearer token.
    pub token: Arc<str>,
    /// Every metric, for `GET /metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// Accept any `Host` header: the operator let the API listen beyond loopback
    /// (`api_allow_remote`). Otherwise only loopback names and addresses are served.
    pub any_host: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// An API error: an HTTP status and a one-line reason, as `{"error": …, "code": …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code: None, message: message.into() }
    }
}

/// The JSON shape of an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One-line reason.
    pub error: String,
    /// Protocol problem code, when the protocol refused the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message, code: self.code })).into_response()
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        match e {
            engine::Error::Refused { code, detail } => {
                ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: Some(code.as_str().into()), message: detail }
            }
            engine::Error::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            engine::Error::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            engine::Error::Store(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            engine::Error::File(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
            engine::Error::Unreachable(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            engine::Error::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
        }
    }
}

impl From<requests::Error> for ApiError {
    fn from(e: requests::Error) -> ApiError {
        let status = match e {
            requests::Error::UnknownKind(_) => StatusCode::NOT_FOUND,
            requests::Error::Json(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON request body, read by [`requests::parse`]: unlike axum's `Json`, it refuses a body
/// that names a key twice in one object, and says why in the API's error shape.
#[derive(Debug)]
pub struct Strict<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Strict<T>, ApiError> {
        let json =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json")
            });
        if !json {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be application/json"));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        Ok(Strict(requests::parse(&bytes)?))
    }
}

/// Whether a `Host` header names this machine's loopback: `localhost`, or a loopback address,
/// with or without a port. A page from elsewhere that rebinds its own name to 127.0.0.1 sends
/// that name, not these.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => v6,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The DNS-rebinding guard: refuses a request whose `Host` is not loopback, before the token
/// is looked at.
async fn host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    if state.any_host || host.is_some_and(loopback_host) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "the Host header must name this machine's loopback (localhost, 127.0.0.1 or [::1]), \
         unless the node runs with api_allow_remote",
    )
    .into_response()
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response(),
    }
}

/// `GET /health`: 200 while the engine's loop answers, 503 otherwise. Says nothing else.
async fn health(State(s): State<AppState>) -> Response {
    let alive = tokio::time::timeout(std::time::Duration::from_secs(5), s.handle.ask(Command::Status)).await;
    match alive {
        Ok(Ok(_)) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "unavailable" }))).into_response(),
    }
}

/// The router: every route behind the token but `/health`, and all of them behind the `Host`
/// guard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/id", get(id))
        .route("/v1/peers", get(peers))
        .route("/v1/connect", post(connect))
        .route("/v1/find", post(find))
        .route("/v1/send/{kind}", post(send))
        .route("/v1/public", get(public))
        .route("/v1/relationships", get(relationships))
        .route("/v1/relationships/{id}/log", get(log))
        .route("/v1/relationships/{id}/export", get(export))
        .route("/v1/outbox/retry", post(retry))
        .route("/v1/blocked", get(blocked))
        .route("/v1/blocked/{key}", put(block).delete(unblock))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // Liveness for supervisors and load balancers: no token, no data.
        .route("/health", get(health))
        .layer(middleware::from_fn_with_state(state.clone(), host))
        .with_state(state)
}

async fn status(State(s): State<AppState>) -> ApiResult<engine::Status> {
    Ok(Json(s.handle.ask(Command::Status).await?))
}

/// The node's identifiers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Id {
    /// libp2p peer id.
    pub peer_id: String,
    /// Rapport key id, hex.
    pub key_id: String,
    /// Listen addresses.
    pub listen: Vec<String>,
}

async fn id(State(s): State<AppState>) -> ApiResult<Id> {
    let st = s.handle.ask(Command::Status).await?;
    Ok(Json(Id { peer_id: st.peer_id, key_id: st.key_id, listen: st.listen }))
}

/// Query of `GET /v1/peers`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PeersQuery {
    /// Also list peers known from the DHT routing table but not connected.
    #[serde(default)]
    pub all: bool,
}

async fn peers(State(s): State<AppState>, Query(q): Query<PeersQuery>) -> ApiResult<Vec<engine::Peer>> {
    Ok(Json(s.handle.ask(|reply| Command::Peers { all: q.all, reply }).await?))
}

async fn find(State(s): State<AppState>, Strict(req): Strict<FindRequest>) -> ApiResult<engine::Found> {
    let peer = req.peer()?;
    Ok(Json(s.handle.ask(|tx| Command::Find(peer, tx)).await??))
}

async fn connect(State(s): State<AppState>, Strict(req): Strict<ConnectRequest>) -> ApiResult<serde_json::Value> {
    let addr = req.multiaddr()?;
    let dial = s.handle.ask(|tx| Command::Connect(addr, tx));
    let peer = tokio::time::timeout(CONNECT_TIMEOUT, dial).await.map_err(|_| {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no connection to {} within {} s; the node keeps dialing", req.address, CONNECT_TIMEOUT.as_secs()),
        )
    })???;
    Ok(Json(serde_json::json!({ "connected": peer.to_string(), "address": req.address })))
}

/// Signs, stores and sends (or publishes) a message of `kind`.
async fn send(
    State(s): State<AppState>,
    Path(kind): Path<String>,
    Strict(req): Strict<SendRequest>,
) -> ApiResult<engine::Submitted> {
    let draft = req.check(&kind)?;
    Ok(Json(s.handle.ask(|tx| Command::Send(Box::new(draft), tx)).await??))
}

/// A public offer or intent.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublicEntry {
    /// Message id, hex.
    pub id: String,
    /// `offer` or `intent`.
    pub kind: String,
    /// Who published it (key id, hex).
    pub from: String,
    /// Creation time, Unix ms.
    pub created_at: u64,
    /// The body.
    pub body: serde_json::Value,
}

async fn public(State(s): State<AppState>) -> ApiResult<Vec<PublicEntry>> {
    let messages = s.handle.ask(Command::Public).await?;
    Ok(Json(
        messages
            .iter()
            .map(|m| PublicEntry {
                id: m.id().to_hex(),
                kind: m.kind().as_str().into(),
                from: m.header().from.to_hex(),
                created_at: m.header().created_at,
                body: serde_json::to_value(m.body()).unwrap_or_default(),
            })
            .collect(),
    ))
}

/// The answer to `POST /v1/outbox/retry`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Retried {
    /// Messages waiting in the outbox, all of them due now.
    pub waiting: usize,
}

/// Makes every message waiting in the outbox due now, as if its backoff had passed, and sends
/// what can go (one message per relationship, as always).
async fn retry(State(s): State<AppState>) -> ApiResult<Retried> {
    Ok(Json(Retried { waiting: s.handle.ask(Command::RetryNow).await? }))
}

/// The block list, or one change to it.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlockedKeys {
    /// Blocked key ids, hex, in byte order.
    pub blocked: Vec<String>,
}

/// The answer to blocking or unblocking a key.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlockChange {
    /// The key, hex.
    pub key: String,
    /// Whether it is blocked now.
    pub blocked: bool,
    /// Whether this request changed anything (false: it was blocked, or not, already).
    pub changed: bool,
}

async fn blocked(State(s): State<AppState>) -> ApiResult<BlockedKeys> {
    let keys = s.handle.ask(Command::Blocked).await?;
    Ok(Json(BlockedKeys { blocked: keys.iter().map(|k| k.to_hex()).collect() }))
}

async fn block(State(s): State<AppState>, Path(key): Path<String>) -> ApiResult<BlockChange> {
    set_blocked(s, &key, true).await
}

async fn unblock(State(s): State<AppState>, Path(key): Path<String>) -> ApiResult<BlockChange> {
    set_blocked(s, &key, false).await
}

async fn set_blocked(s: AppState, key: &str, block: bool) -> ApiResult<BlockChange> {
    let id = requests::key_id(key)?;
    let changed = s.handle.ask(|reply| Command::Block { key: id, block, reply }).await??;
    Ok(Json(BlockChange { key: id.to_hex(), blocked: block, changed }))
}

async fn relationships(State(s): State<AppState>) -> ApiResult<Vec<engine::Summary>> {
    Ok(Json(s.handle.ask(Command::Relationships).await?))
}

/// One stored message of a relationship.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogEntry {
    /// Message id, hex.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Sender's key id, hex.
    pub from: String,
    /// Sequence number (0 for receipts and problem reports).
    pub seq: u64,
    /// Creation time, Unix ms.
    pub created_at: u64,
    /// The body, decoded, as `GET /v1/public` gives bodies (ids and digests in hex).
    #[serde(default)]
    pub body: serde_json::Value,
    /// The envelope, hex: what was signed, byte for byte.
    pub envelope: String,
}

async fn log(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Vec<LogEntry>> {
    let rel = requests::relationship_id(&id)?;
    let stored =
        s.store.relationship(&rel).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if stored.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no relationship {id}")));
    }
    let mut out = Vec::with_capacity(stored.len());
    for bytes in stored {
        let m = Message::open(&bytes)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("stored message: {e}")))?;
        out.push(LogEntry {
            id: m.id().to_hex(),
            kind: m.kind().as_str().into(),
            from: m.header().from.to_hex(),
            seq: m.header().seq,
            created_at: m.header().created_at,
            body: serde_json::to_value(m.body()).unwrap_or_default(),
            envelope: hex::encode(&bytes),
        });
    }
    Ok(Json(out))
}

/// The relationship as a portable bundle (spec/node.md §7), sealed by the node.
async fn export(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<crate::bundle::Bundle> {
    let rel = requests::relationship_id(&id)?;
    Ok(Json(s.handle.ask(|reply| Command::Export(rel, reply)).await??))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    // A node shutting down still shows its last figures.
    let _ = s.handle.ask(Command::RefreshGauges).await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::encode(&s.registry),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// How long `POST /v1/connect` waits for the connection before it answers 504.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, Client};

    /// Every path of the OpenAPI document is served, behind the token, and a path it does not
    /// list is not. (The engine is absent, so served paths answer 503 or a 4xx of their own.)
    #[tokio::test]
    async fn every_documented_route_exists_and_wants_the_token() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let state = AppState {
            handle: Handle(tx),
            store: Arc::new(crate::store::Memory::new()),
            token: "t".repeat(64).into(),
            registry: Arc::default(),
            any_host: false,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 10);
        let wrong = Client::new(&addr, "x".into());
        let right = Client::new(&addr, "t".repeat(64));
        for (path, ops) in paths {
            let path =
                path.replace("{id}", &"ab".repeat(16)).replace("{kind}", "offer").replace("{key}", &"cd".repeat(32));
            for (method, op) in ops.as_object().unwrap() {
                // A route documented without security (`/health`) asks for no token.
                if op["security"] == serde_json::json!([]) {
                    let r = wrong.get::<serde_json::Value>(&path).await;
                    assert!(!matches!(r, Err(client::Error::Refused { status: 401, .. })), "{path}: {r:?}");
                    continue;
                }
                let r = match method.as_str() {
                    "get" => wrong.get::<serde_json::Value>(&path).await,
                    "post" => wrong.post::<_, serde_json::Value>(&path, &serde_json::json!({})).await,
                    "put" => wrong.put::<serde_json::Value>(&path).await,
                    "delete" => wrong.delete::<serde_json::Value>(&path).await,
                    other => panic!("undocumented method {other}"),
                };
                assert!(matches!(r, Err(client::Error::Refused { status: 401, .. })), "{method} {path}: {r:?}");
                let r = match method.as_str() {
                    "get" => right.get::<serde_json::Value>(&path).await,
                    "put" => right.put::<serde_json::Value>(&path).await,
                    "delete" => right.delete::<serde_json::Value>(&path).await,
                    _ => right.post::<_, serde_json::Value>(&path, &serde_json::json!({})).await,
                };
                // A handler's own 404 explains itself; the router's has no body.
                let unrouted = |m: &str| m == "404 Not Found" || m == "405 Method Not Allowed";
                assert!(
                    !matches!(&r, Err(client::Error::Refused { message, .. }) if unrouted(message)),
                    "{method} {path}: {r:?}"
                );
                assert!(!matches!(r, Err(client::Error::Refused { status: 401, .. })), "{method} {path}: {r:?}");
            }
        }
        let r = right.get::<serde_json::Value>("/v1/nothing").await;
        assert!(matches!(r, Err(client::Error::Refused { status: 404, message, .. }) if message == "404 Not Found"));
    }

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["localhost", "LOCALHOST:4711", "127.0.0.1", "127.0.0.1:4711", "127.9.9.9:1", "[::1]", "[::1]:4711"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:4711",
            "localhost.evil.example",
            "10.0.0.1:4711",
            "0.0.0.0:4711",
            "[::]:4711",
            "[::1]4711",
            "[::1",
            "127.0.0.1:",
            "127.0.0.1:x",
            "::1",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    /// Over HTTP: a foreign `Host` is refused before the token is read (unless the node allows
    /// remote API use), and a body naming a key twice is refused with a reason.
    #[tokio::test]
    async fn foreign_hosts_and_duplicate_keys_are_refused() {
        let serve = |any_host: bool| async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            drop(rx);
            let state = AppState {
                handle: Handle(tx),
                store: Arc::new(crate::store::Memory::new()),
                token: "t".repeat(64).into(),
                registry: Arc::default(),
                any_host,
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, router(state)).await });
            addr
        };
        let http = reqwest::Client::new();
        let token = "t".repeat(64);
        let ask = |addr: std::net::SocketAddr, host: &'static str| {
            http.get(format!("http://{addr}/v1/status")).header(header::HOST, host).bearer_auth(&token).send()
        };
        let strict = serve(false).await;
        let r = ask(strict, "rebound.example:4711").await.unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
        assert!(r.text().await.unwrap().contains("loopback"));
        // Loopback names pass the guard; the engine is absent, so the handler answers 503.
        assert_eq!(ask(strict, "localhost").await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        let open = serve(true).await;
        assert_eq!(ask(open, "rebound.example:4711").await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);

        let post = |body: &'static str, json: bool| {
            let r = http.post(format!("http://{strict}/v1/find")).bearer_auth(&token).body(body);
            if json { r.header(header::CONTENT_TYPE, "application/json") } else { r }.send()
        };
        let r = post(r#"{"peer_id":"a","peer_id":"b"}"#, true).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: ErrorBody = r.json().await.unwrap();
        assert!(body.error.contains("duplicate key \"peer_id\""), "{}", body.error);
        assert_eq!(post(r#"{"peer_id":"a"}"#, false).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // One key once gets as far as the request's own checks.
        let r = post(r#"{"peer_id":"a"}"#, true).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a bad peer id, checked after the JSON");
    }
}

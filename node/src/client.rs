//! The CLI's client of the control API: finds the running daemon through the `api` file in
//! the data directory and authenticates with the token beside it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ErrorBody;
use crate::config::API_FILE;
use crate::identity;

/// Why a CLI command failed; each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `api` file: the daemon is not running for this data directory.
    #[error("no running node for {0} (start one with `rapport run`)")]
    NotRunning(String),
    /// The token could not be read.
    #[error(transparent)]
    Identity(#[from] identity::Error),
    /// The daemon could not be reached.
    #[error("cannot reach the node at {addr}: {detail}")]
    Unreachable {
        /// The API address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The daemon refused the request.
    #[error("{}{message} (HTTP {status})", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// Protocol problem code, if any.
        code: Option<String>,
        /// The reason.
        message: String,
    },
}

/// A connection to one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// The client of the node running on `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Result<Client, Error> {
        let api = std::fs::read_to_string(data_dir.join(API_FILE))
            .map_err(|_| Error::NotRunning(data_dir.display().to_string()))?;
        identity::check_data_dir(data_dir)?;
        let token = identity::load_token(data_dir)?;
        Ok(Client::new(api.trim(), token))
    }

    /// A client of the API at `addr` (`host:port`) with `token`.
    pub fn new(addr: &str, token: String) -> Client {
        Client { base: format!("http://{addr}"), token, http: reqwest::Client::new() }
    }

    async fn finish<T: DeserializeOwned>(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, Error> {
        let unreachable = |e: reqwest::Error| Error::Unreachable { addr: self.base.clone(), detail: e.to_string() };
        let response = response.map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(unreachable);
        }
        let body: Option<ErrorBody> = response.json().await.ok();
        Err(Error::Refused {
            status: status.as_u16(),
            code: body.as_ref().and_then(|b| b.code.clone()),
            message: body.map(|b| b.error).unwrap_or_else(|| status.to_string()),
        })
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await;
        self.finish(r).await
    }

    /// `GET path`, as text (for `/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        let unreachable = |e: reqwest::Error| Error::Unreachable { addr: self.base.clone(), detail: e.to_string() };
        let r =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.map_err(unreachable)?;
        let status = r.status();
        let text = r.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(Error::Refused { status: status.as_u16(), code: None, message: text });
        }
        Ok(text)
    }

    /// `PUT path`, no body.
    pub async fn put<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let r = self.http.put(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await;
        self.finish(r).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let r = self.http.delete(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await;
        self.finish(r).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, Error> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body).send().await;
        self.finish(r).await
    }
}

//! A blocking HTTPS client for the collector API, pinned to the collector's CA.
//!
//! Every failure becomes one line that says what went wrong and where: the server's own
//! `{"error": ...}` message for 4xx/5xx, or the transport problem (connection refused, a
//! certificate the pinned CA did not sign, a timeout).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeline_shared::v1::api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::tls::Certificate;

use crate::secret::Secret;

/// Longest response body the client reads.
const RESPONSE_LIMIT: u64 = 64 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {0} holds no PEM certificate")]
    EmptyCa(PathBuf),
    #[error("server URL {0:?} must start with https://")]
    NotHttps(String),
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: {status} {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected response: {message}")]
    Decode { url: String, message: String },
}

/// Connection settings of the client subcommands.
#[derive(Debug, Clone)]
pub struct Connection {
    pub server: String,
    pub token: Secret,
    pub ca: PathBuf,
}

/// A client bound to one collector and one token.
#[derive(Debug)]
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    token: Secret,
}

/// Reads the CA bundle a client pins.
pub fn load_ca(path: &Path) -> Result<Vec<Certificate<'static>>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let certs = crate::tls::ureq_certificates(&pem);
    if certs.is_empty() {
        return Err(ClientError::EmptyCa(path.to_owned()));
    }
    Ok(certs)
}

impl ApiClient {
    pub fn new(connection: &Connection) -> Result<ApiClient, ClientError> {
        let base = connection.server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::NotHttps(connection.server.clone()));
        }
        let roots = load_ca(&connection.ca)?;
        let agent = ureq::Agent::config_builder()
            .tls_config(crate::tls::ureq_tls(&roots))
            .https_only(true)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("lifeline-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(ApiClient {
            agent,
            base,
            token: connection.token.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.expose())
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        decode(&url, &self.get_bytes(path)?)
    }

    /// A `GET` whose answer is not JSON (a screenshot): the body's bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("authorization", self.auth())
            .call();
        finish_bytes(&url, response)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(path, body, ureq::Agent::post)
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(path, body, ureq::Agent::put)
    }

    pub fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(path, body, ureq::Agent::patch)
    }

    fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        method: fn(&ureq::Agent, String) -> ureq::RequestBuilder<ureq::typestate::WithBody>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = method(&self.agent, url.clone())
            .header("authorization", self.auth())
            .send_json(body);
        finish(&url, response)
    }
}

/// Turns a ureq result into the decoded body or a one-line error.
pub fn finish<T: DeserializeOwned>(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ClientError> {
    decode(url, &finish_bytes(url, response)?)
}

fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Decode {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// Turns a ureq result into the body's bytes (of a success) or a one-line error.
pub fn finish_bytes(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Vec<u8>, ClientError> {
    let mut response = response.map_err(|e| ClientError::Transport {
        url: url.to_owned(),
        message: describe_transport_error(&e),
    })?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(RESPONSE_LIMIT)
        .read_to_vec()
        .map_err(|e| ClientError::Transport {
            url: url.to_owned(),
            message: describe_transport_error(&e),
        })?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| {
                status
                    .canonical_reason()
                    .unwrap_or("unexpected status")
                    .to_owned()
            });
        return Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        });
    }
    Ok(body)
}

/// A transport error in words a user can act on.
pub fn describe_transport_error(error: &ureq::Error) -> String {
    let text = error.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!(
            "the server's certificate is not signed by the pinned CA ({text}); check --ca / \
             LIFELINE_CA points at this collector's ca.pem"
        )
    } else if text.contains("NotValidForName") {
        format!(
            "the server's certificate does not cover this host name ({text}); restart the \
             collector with --san NAME"
        )
    } else if let ureq::Error::Io(io) = error {
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            "connection refused: is the collector running and is the URL right?".to_owned()
        } else {
            text
        }
    } else {
        text
    }
}

//! The HTTP calls the connectors make: blocking (they run on the outbox's own thread, or in
//! `spawn_blocking` for validation), bounded in time, and sorted into worth-retrying or not.

use super::{ConnectorError, REQUEST_TIMEOUT};

/// A client for one ticket system.
pub struct Http {
    agent: ureq::Agent,
}

/// A response: status and body.
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text (bounded by the client).
    pub body: String,
}

/// Longest response body read; ticket systems answer with small JSON documents.
const MAX_BODY: u64 = 1 << 20;

impl Http {
    /// A client with the request timeout; statuses are returned, not turned into errors.
    /// HTTPS trusts the web's public roots, or only the CA certificates in `ca_file` (PEM),
    /// for ticket systems behind a carrier's own CA.
    pub fn new(ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("[tickets] ca_file {}: {e}", path.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                anyhow::bail!(
                    "[tickets] ca_file {}: no PEM certificate in it",
                    path.display()
                );
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Self {
            agent: config.build().into(),
        })
    }

    /// GET with extra headers.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, ConnectorError> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.call())
    }

    /// GET of a JSON document: 2xx only, parsed; `what` names it in errors.
    pub fn get_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<serde_json::Value, ConnectorError> {
        self.get(url, headers)?.ok(what)?.json(what)
    }

    /// POST of a JSON body with extra headers.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Response, ConnectorError> {
        self.send("POST", url, headers, body)
    }

    /// PUT/POST/DELETE with a JSON body.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Response, ConnectorError> {
        let mut req = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.content_type("application/json").send(body))
    }
}

fn read(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response, ConnectorError> {
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .unwrap_or_default();
            Ok(Response { status, body })
        }
        // Refused, reset, timed out, name not found: the system may be back later.
        Err(e) => Err(ConnectorError::Transient(e.to_string())),
    }
}

impl Response {
    /// Ok for 2xx; 429 and 5xx are worth retrying, other statuses are not.
    pub fn ok(self, what: &str) -> Result<Response, ConnectorError> {
        match self.status {
            200..=299 => Ok(self),
            429 | 500..=599 => Err(ConnectorError::Transient(format!(
                "{what}: HTTP {}",
                self.status
            ))),
            s => Err(ConnectorError::Permanent(format!(
                "{what}: HTTP {s}: {}",
                snippet(&self.body)
            ))),
        }
    }

    /// The body as JSON.
    pub fn json(&self, what: &str) -> Result<serde_json::Value, ConnectorError> {
        serde_json::from_str(&self.body)
            .map_err(|e| ConnectorError::Permanent(format!("{what}: the answer is not JSON: {e}")))
    }
}

/// The start of a body for an error message: short, one line.
fn snippet(body: &str) -> String {
    let one_line: String = body.chars().filter(|c| !c.is_control()).take(160).collect();
    one_line
}

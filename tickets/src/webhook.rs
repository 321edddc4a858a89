//! The generic webhook: the report as JSON, POSTed with an HMAC-SHA256 signature a receiver
//! checks before trusting it, and an idempotency key it uses to drop a repeated delivery.
//!
//! Headers: `X-Fernhilfe-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp "." body)>`,
//! `X-Fernhilfe-Timestamp: <unix seconds>` (a receiver refuses old ones: no replays),
//! `Idempotency-Key: <key>` (the same for every attempt of one report).

use super::http::Http;
use super::{Connector, ConnectorError, TicketState};
use audit::report::SessionReport;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The webhook connector.
pub struct Webhook {
    url: String,
    secret: Vec<u8>,
    http: Http,
}

impl Webhook {
    /// A webhook at `url` signing with `secret`.
    pub fn new(http: Http, url: &str, secret: Vec<u8>) -> anyhow::Result<Self> {
        if secret.len() < 16 {
            anyhow::bail!(
                "[tickets] secret: use at least 16 characters for the webhook's HMAC key"
            );
        }
        Ok(Self {
            url: url.to_owned(),
            secret,
            http,
        })
    }
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("sha256={}", protocol::hex::lower(&tag))
}

impl Connector for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn ticket_state(&self, _ticket: u64) -> Result<TicketState, ConnectorError> {
        Ok(TicketState::Open)
    }

    fn post(&self, report: &SessionReport, key: &str, _retry: bool) -> Result<(), ConnectorError> {
        let body = serde_json::json!({ "idempotency_key": key, "report": report }).to_string();
        let ts = audit::clock::unix_now().to_string();
        let sig = signature(&self.secret, &ts, body.as_bytes());
        self.http
            .post_json(
                &self.url,
                &[
                    ("X-Fernhilfe-Signature", &sig),
                    ("X-Fernhilfe-Timestamp", &ts),
                    ("Idempotency-Key", key),
                ],
                &body,
            )?
            .ok("webhook")?;
        Ok(())
    }
}

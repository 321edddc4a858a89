//! Session reports to the school carrier's ticket system: one comment when a session starts
//! and one when it ends, written into the ticket the session exists for.
//!
//! A [`Connector`] speaks one system's API (Request Tracker, Zammad, GLPI, or a signed
//! webhook); adding a system is one more implementation of that trait. Reports are queued in
//! the audit database ([`outbox`]) in the same transaction as the audit record they report,
//! and delivered by a thread of their own with retries, so a slow or dead ticket system never
//! touches a session.

#![warn(missing_docs)]

pub mod glpi;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod rt;
pub mod validation;
pub mod webhook;
pub mod zammad;

use audit::report::SessionReport;
use serde::Deserialize;
use std::time::Duration;

/// How long one request to a ticket system may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a ticket may have a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// New, open or in progress: a session may start.
    Open,
    /// Resolved, closed, rejected or deleted.
    Closed,
    /// No such ticket.
    Unknown,
}

/// Why a request to the ticket system failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Worth trying again later: the system is down, slow or overloaded.
    #[error("ticket system unavailable: {0}")]
    Transient(String),
    /// Trying again will not help: credentials, configuration, or the ticket itself.
    #[error("ticket system refused: {0}")]
    Permanent(String),
}

/// One ticket system's API.
pub trait Connector: Send + Sync {
    /// The system's name for logs and `audit show`.
    fn name(&self) -> &'static str;
    /// Whether the ticket exists and is open.
    fn ticket_state(&self, ticket: u64) -> Result<TicketState, ConnectorError>;
    /// Writes the report into its ticket. `key` is the same for every attempt of one report;
    /// after an attempt whose outcome is unknown, the connector must not post it twice.
    fn post(&self, report: &SessionReport, key: &str, retry: bool) -> Result<(), ConnectorError>;
}

/// A secret from the config file, or from the environment variable it names
/// (`password_env = "RT_PASSWORD"`), so it need not be written into `relay.toml`.
fn secret(value: &Option<String>, env: &Option<String>, what: &str) -> anyhow::Result<String> {
    if let Some(name) = env {
        return std::env::var(name)
            .map_err(|_| anyhow::anyhow!("{what}: environment variable {name} is not set"));
    }
    value
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{what} is missing in [tickets] of relay.toml"))
}

/// The `[tickets]` table of `relay.toml`. No `Debug`: it holds credentials, and nothing may
/// print them by accident.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// `rt`, `zammad`, `glpi` or `webhook`.
    pub system: String,
    /// Base URL: RT `https://rt.example/` (REST 2 below it), Zammad `https://zammad.example/`,
    /// GLPI `https://glpi.example/apirest.php`, or the webhook's full URL.
    pub url: String,
    /// Refuse agents whose ticket is unknown or closed (not for `webhook`).
    #[serde(default)]
    pub validate: bool,
    /// With `validate`: what a registration gets when its ticket cannot be checked (ticket
    /// system busy, slow or down): `refuse` ("try again", the default) or `register`.
    #[serde(default)]
    pub unchecked: crate::validation::WhenUnchecked,
    /// Language of the comments: `de` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
    /// RT: user for basic authentication (or `token`).
    pub user: Option<String>,
    /// RT: the user's password.
    pub password: Option<String>,
    /// The environment variable that holds `password` instead.
    pub password_env: Option<String>,
    /// RT auth token, Zammad access token, GLPI user token.
    pub token: Option<String>,
    /// The environment variable that holds `token` instead.
    pub token_env: Option<String>,
    /// GLPI: the API client's app token.
    pub app_token: Option<String>,
    /// The environment variable that holds `app_token` instead.
    pub app_token_env: Option<String>,
    /// Webhook: the HMAC-SHA256 key the receiver checks the signature with.
    pub secret: Option<String>,
    /// The environment variable that holds `secret` instead.
    pub secret_env: Option<String>,
    /// PEM file of the CA certificates to trust for an HTTPS ticket system (instead of the
    /// web's public roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// First pause (seconds) before a failed report is tried again; doubles up to an hour.
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u32,
}

fn default_retry_base() -> u32 {
    5
}

impl TicketsConfig {
    /// The connector this configuration describes; credentials are read now.
    pub fn connector(&self) -> anyhow::Result<std::sync::Arc<dyn Connector>> {
        // Credentials in the URL would end up in error messages and logs.
        let after_scheme = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let authority = after_scheme.split('/').next().unwrap_or("");
        if !(self.url.starts_with("https://") || self.url.starts_with("http://"))
            || authority.contains('@')
        {
            anyhow::bail!("[tickets] url must be http(s)://host/… without a user or password in it (use user/password/token keys)");
        }
        let lang = match self.lang.as_deref() {
            None | Some("de") => audit::record::Lang::De,
            Some("en") => audit::record::Lang::En,
            Some(other) => anyhow::bail!("[tickets] lang = \"{other}\": use \"de\" or \"en\""),
        };
        let http = http::Http::new(self.ca_file.as_deref())?;
        Ok(match self.system.as_str() {
            "rt" => std::sync::Arc::new(rt::RequestTracker::new(
                http,
                &self.url,
                match (&self.token, &self.token_env) {
                    (None, None) => rt::Auth::Basic {
                        user: self.user.clone().ok_or_else(|| {
                            anyhow::anyhow!("[tickets] user (or token) is missing for rt")
                        })?,
                        password: secret(&self.password, &self.password_env, "[tickets] password")?,
                    },
                    _ => rt::Auth::Token(secret(&self.token, &self.token_env, "[tickets] token")?),
                },
                lang,
            )?),
            "zammad" => std::sync::Arc::new(zammad::Zammad::new(
                http,
                &self.url,
                secret(&self.token, &self.token_env, "[tickets] token")?,
                lang,
            )?),
            "glpi" => std::sync::Arc::new(glpi::Glpi::new(
                http,
                &self.url,
                secret(&self.token, &self.token_env, "[tickets] token")?,
                secret(&self.app_token, &self.app_token_env, "[tickets] app_token").ok(),
                lang,
            )?),
            "webhook" => {
                if self.validate {
                    anyhow::bail!("[tickets] validate = true needs a ticket system; a webhook cannot say whether a ticket is open");
                }
                std::sync::Arc::new(webhook::Webhook::new(
                    http,
                    &self.url,
                    secret(&self.secret, &self.secret_env, "[tickets] secret")?.into_bytes(),
                )?)
            }
            other => {
                anyhow::bail!("[tickets] system = \"{other}\": use rt, zammad, glpi or webhook")
            }
        })
    }
}

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

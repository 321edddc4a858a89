//! Request Tracker 5, REST 2: an internal comment per report, the session's minutes as
//! `TimeTaken` on the end report. The report's key is in the comment's subject, so a retry
//! after an attempt with unknown outcome first looks whether the comment is already there.

use super::http::Http;
use super::{Connector, ConnectorError, TicketState};
use audit::record::Lang;
use audit::report::SessionReport;
use base64::Engine;

/// How the relay signs in to RT.
pub enum Auth {
    /// A user and password (basic authentication).
    Basic {
        /// The RT user.
        user: String,
        /// Its password.
        password: String,
    },
    /// An RT auth token (`Authorization: token …`).
    Token(String),
}

/// The RT connector.
pub struct RequestTracker {
    api: String,
    authorization: String,
    lang: Lang,
    http: Http,
}

impl RequestTracker {
    /// RT at `base` (e.g. `https://rt.example/`), REST 2 below it.
    pub fn new(http: Http, base: &str, auth: Auth, lang: Lang) -> anyhow::Result<Self> {
        let authorization = match auth {
            Auth::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            Auth::Token(t) => format!("token {t}"),
        };
        Ok(Self {
            api: format!("{}/REST/2.0", base.trim_end_matches('/')),
            authorization,
            lang,
            http,
        })
    }

    fn headers(&self) -> [(&str, &str); 1] {
        [("Authorization", self.authorization.as_str())]
    }

    /// Whether a comment with `key` in its subject is already on the ticket.
    fn already_posted(&self, ticket: u64, key: &str) -> Result<bool, ConnectorError> {
        for page in 1..=20 {
            let url = format!(
                "{}/ticket/{ticket}/attachments?fields=Subject&per_page=100&page={page}",
                self.api
            );
            let v = self
                .http
                .get_json(&url, &self.headers(), "RT attachments")?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if items
                .iter()
                .any(|i| i["Subject"].as_str().is_some_and(|s| s.contains(key)))
            {
                return Ok(true);
            }
            if v["pages"].as_u64().is_none_or(|p| page >= p) {
                break;
            }
        }
        Ok(false)
    }
}

impl Connector for RequestTracker {
    fn name(&self) -> &'static str {
        "Request Tracker"
    }

    fn ticket_state(&self, ticket: u64) -> Result<TicketState, ConnectorError> {
        let r = self
            .http
            .get(&format!("{}/ticket/{ticket}", self.api), &self.headers())?;
        if r.status == 404 {
            return Ok(TicketState::Unknown);
        }
        let v = r.ok("RT ticket")?.json("RT ticket")?;
        Ok(match v["Status"].as_str() {
            Some("resolved" | "rejected" | "deleted") => TicketState::Closed,
            Some(_) => TicketState::Open,
            None => {
                return Err(ConnectorError::Permanent(
                    "RT ticket: no Status in the answer".into(),
                ))
            }
        })
    }

    fn post(&self, report: &SessionReport, key: &str, retry: bool) -> Result<(), ConnectorError> {
        if retry && self.already_posted(report.ticket, key)? {
            return Ok(());
        }
        let mut body = serde_json::json!({
            "Subject": report.keyed_subject(self.lang, key),
            "Content": report.text(self.lang),
            "ContentType": "text/plain",
        });
        if let Some(m) = report.minutes() {
            body["TimeTaken"] = serde_json::Value::String(m.to_string());
        }
        self.http
            .post_json(
                &format!("{}/ticket/{}/comment", self.api, report.ticket),
                &self.headers(),
                &body.to_string(),
            )?
            .ok("RT comment")?;
        Ok(())
    }
}

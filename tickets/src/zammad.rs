//! Zammad (REST): the ticket *number* people type is looked up to Zammad's internal id, then
//! each report is an internal note article, with the session's minutes as time accounting.

use super::http::Http;
use super::{Connector, ConnectorError, TicketState};
use audit::record::Lang;
use audit::report::SessionReport;

/// The Zammad connector.
pub struct Zammad {
    api: String,
    authorization: String,
    lang: Lang,
    http: Http,
}

impl Zammad {
    /// Zammad at `base` (e.g. `https://zammad.example/`) with an access token.
    pub fn new(http: Http, base: &str, token: String, lang: Lang) -> anyhow::Result<Self> {
        Ok(Self {
            api: format!("{}/api/v1", base.trim_end_matches('/')),
            authorization: format!("Token token={token}"),
            lang,
            http,
        })
    }

    fn headers(&self) -> [(&str, &str); 1] {
        [("Authorization", self.authorization.as_str())]
    }

    /// The ticket with this number: (internal id, state name), or `None`.
    fn find(&self, number: u64) -> Result<Option<(u64, String)>, ConnectorError> {
        let url = format!(
            "{}/tickets/search?query=number:{number}&limit=5&expand=true",
            self.api
        );
        let v = self.http.get_json(&url, &self.headers(), "Zammad search")?;
        let found = v.as_array().and_then(|a| {
            a.iter().find(|t| {
                t["number"].as_str() == Some(number.to_string().as_str())
                    || t["number"].as_u64() == Some(number)
            })
        });
        Ok(found.and_then(|t| {
            Some((
                t["id"].as_u64()?,
                t["state"].as_str().unwrap_or("").to_owned(),
            ))
        }))
    }
}

impl Connector for Zammad {
    fn name(&self) -> &'static str {
        "Zammad"
    }

    fn ticket_state(&self, number: u64) -> Result<TicketState, ConnectorError> {
        Ok(match self.find(number)? {
            None => TicketState::Unknown,
            Some((_, state)) if matches!(state.as_str(), "closed" | "merged" | "removed") => {
                TicketState::Closed
            }
            Some(_) => TicketState::Open,
        })
    }

    fn post(&self, report: &SessionReport, key: &str, retry: bool) -> Result<(), ConnectorError> {
        let Some((id, _)) = self.find(report.ticket)? else {
            return Err(ConnectorError::Permanent(format!(
                "Zammad has no ticket number {}",
                report.ticket
            )));
        };
        let subject = report.keyed_subject(self.lang, key);
        if retry {
            let url = format!("{}/ticket_articles/by_ticket/{id}", self.api);
            let v = self
                .http
                .get_json(&url, &self.headers(), "Zammad articles")?;
            if v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|art| art["subject"].as_str().is_some_and(|s| s.contains(key)))
            }) {
                return Ok(());
            }
        }
        let mut body = serde_json::json!({
            "ticket_id": id,
            "subject": subject,
            "body": report.text(self.lang),
            "content_type": "text/plain",
            "type": "note",
            "internal": true,
        });
        if let Some(m) = report.minutes() {
            body["time_unit"] = serde_json::Value::String(m.to_string());
        }
        self.http
            .post_json(
                &format!("{}/ticket_articles", self.api),
                &self.headers(),
                &body.to_string(),
            )?
            .ok("Zammad article")?;
        Ok(())
    }
}

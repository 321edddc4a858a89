//! GLPI (`apirest.php`): a session token from the user token (and the API client's app
//! token), then each report is a private ITIL follow-up on the ticket. GLPI's ticket id is
//! the number people see.

use super::http::Http;
use super::{Connector, ConnectorError, TicketState};
use audit::record::Lang;
use audit::report::SessionReport;

/// GLPI's ticket statuses from 5 (solved) on are closed.
const SOLVED: u64 = 5;

/// The GLPI connector.
pub struct Glpi {
    api: String,
    user_token: String,
    app_token: Option<String>,
    lang: Lang,
    http: Http,
}

/// A GLPI API session, ended when dropped.
struct GlpiSession<'a> {
    glpi: &'a Glpi,
    token: String,
}

impl GlpiSession<'_> {
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut h = vec![("Session-Token", self.token.as_str())];
        if let Some(a) = &self.glpi.app_token {
            h.push(("App-Token", a.as_str()));
        }
        h
    }
}

impl Drop for GlpiSession<'_> {
    fn drop(&mut self) {
        let _ = self
            .glpi
            .http
            .get(&format!("{}/killSession", self.glpi.api), &self.headers());
    }
}

impl Glpi {
    /// GLPI's API at `api` (e.g. `https://glpi.example/apirest.php`).
    pub fn new(
        http: Http,
        api: &str,
        user_token: String,
        app_token: Option<String>,
        lang: Lang,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            user_token,
            app_token,
            lang,
            http,
        })
    }

    fn session(&self) -> Result<GlpiSession<'_>, ConnectorError> {
        let auth = format!("user_token {}", self.user_token);
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(a) = &self.app_token {
            h.push(("App-Token", a.as_str()));
        }
        let v = self
            .http
            .get_json(&format!("{}/initSession", self.api), &h, "GLPI initSession")?;
        let token = v["session_token"].as_str().ok_or_else(|| {
            ConnectorError::Permanent("GLPI initSession: no session_token".into())
        })?;
        Ok(GlpiSession {
            glpi: self,
            token: token.to_owned(),
        })
    }
}

impl Connector for Glpi {
    fn name(&self) -> &'static str {
        "GLPI"
    }

    fn ticket_state(&self, ticket: u64) -> Result<TicketState, ConnectorError> {
        let s = self.session()?;
        let r = self
            .http
            .get(&format!("{}/Ticket/{ticket}", self.api), &s.headers())?;
        if r.status == 404 {
            return Ok(TicketState::Unknown);
        }
        let v = r.ok("GLPI ticket")?.json("GLPI ticket")?;
        Ok(match v["status"].as_u64() {
            Some(st) if st >= SOLVED => TicketState::Closed,
            Some(_) => TicketState::Open,
            None => {
                return Err(ConnectorError::Permanent(
                    "GLPI ticket: no status in the answer".into(),
                ))
            }
        })
    }

    fn post(&self, report: &SessionReport, key: &str, retry: bool) -> Result<(), ConnectorError> {
        let s = self.session()?;
        let t = report.ticket;
        if retry {
            let v = self.http.get_json(
                &format!("{}/Ticket/{t}/ITILFollowup", self.api),
                &s.headers(),
                "GLPI follow-ups",
            )?;
            if v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|f| f["content"].as_str().is_some_and(|c| c.contains(key)))
            }) {
                return Ok(());
            }
        }
        let content = follow_up_html(&format!(
            "{}\n\n{}\n[{key}]",
            report.subject(self.lang),
            report.text(self.lang)
        ));
        let body = serde_json::json!({
            "input": { "itemtype": "Ticket", "items_id": t, "content": content, "is_private": 1 }
        });
        self.http
            .post_json(
                &format!("{}/Ticket/{t}/ITILFollowup", self.api),
                &s.headers(),
                &body.to_string(),
            )?
            .ok("GLPI follow-up")?;
        Ok(())
    }
}

/// A follow-up's content as GLPI takes it: HTML, so every line of the report is escaped (staff
/// and host names are text, never markup) and lines are kept with `<br>`.
fn follow_up_html(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(escape_html).collect();
    format!("<p>{}</p>", lines.join("<br>\n"))
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_follow_up_is_escaped_html_line_by_line() {
        let html = super::follow_up_html("PC: PC-12\nSupport: <b>Anna</b> & \"Co\" 'x'\n[k-7]");
        assert_eq!(
            html,
            "<p>PC: PC-12<br>\nSupport: &lt;b&gt;Anna&lt;/b&gt; &amp; &quot;Co&quot; &#39;x&#39;<br>\n[k-7]</p>"
        );
    }
}

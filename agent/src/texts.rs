//! What the agent says to the person at the PC, in German (default) and English.

use protocol::ids::TicketNumber;
use protocol::signaling::Refusal;

/// Why the relay refused the agent, in German (the English text is the refusal's `Display`).
pub(crate) fn refusal_de(r: &Refusal) -> &'static str {
    match r {
        Refusal::HostNameTaken => "Ein anderer PC mit diesem Namen wartet schon unter diesem Ticket: Fernhilfe mit --host-name und einem eigenen Namen starten",
        Refusal::Overloaded => "Der Server ist ausgelastet: in einer Minute erneut versuchen",
        Refusal::TooManyFromAddress => "Zu viele Verbindungen aus Ihrem Netz: in einer Minute erneut versuchen",
        Refusal::VersionMismatch { .. } => "Diese Fernhilfe-Version passt nicht zum Server: bitte die aktuelle Version verwenden",
        Refusal::RegistrationExpired => "Die Anmeldung ist abgelaufen: Fernhilfe meldet sich selbst neu an",
        Refusal::TicketNotInSystem => "Das Ticketsystem kennt keine Ticketnummer wie diese: bitte die Nummer mit der Hotline prüfen",
        Refusal::TicketClosed => "Dieses Ticket ist im Ticketsystem geschlossen: bitte die Hotline nach der aktuellen Ticketnummer fragen",
        Refusal::TicketCheckUnavailable => "Das Ticketsystem konnte die Nummer gerade nicht prüfen: in einer Minute erneut versuchen",
        _ => "Der Server hat die Anmeldung abgelehnt: bitte die Hotline anrufen",
    }
}

/// What a failure means for the person at the PC, in German and English, above the technical
/// message (which names addresses and OS errors, mostly in English) for the hotline.
#[cfg(any(windows, test))]
pub(crate) fn failure_summary(e: &anyhow::Error) -> [&'static str; 2] {
    use transport::relay_client::SignalError;
    use transport::TransportError as T;
    // SignalError::Transport is transparent: its source() skips the TransportError it holds,
    // so look inside it as well as along the chain.
    let transport = e.chain().find_map(|c| {
        c.downcast_ref::<T>()
            .or_else(|| match c.downcast_ref::<SignalError>() {
                Some(SignalError::Transport(t)) => Some(t),
                _ => None,
            })
    });
    match transport {
        Some(T::Unreachable { .. }) => [
            "Der Fernhilfe-Server ist nicht erreichbar. Bitte die Netzwerkverbindung prüfen oder die Hotline anrufen.",
            "The Fernhilfe server cannot be reached. Check the network connection or call the hotline.",
        ],
        Some(T::FingerprintMismatch { .. } | T::UntrustedRelay(_)) => [
            "Der Server hat sich nicht als Ihr Fernhilfe-Server ausgewiesen; es wurde nichts übertragen. Bitte die Hotline anrufen.",
            "The server did not prove it is your Fernhilfe server; nothing was sent. Call the hotline.",
        ],
        _ => [
            "Fernhilfe kann nicht fortfahren. Bitte die Meldung unten der Hotline vorlesen.",
            "Fernhilfe cannot go on. Read the message below to the hotline.",
        ],
    }
}

/// Why the ticket number window asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketProblem {
    NotDigits,
    Empty,
    TooLong,
    /// The relay's ticket system has no such ticket.
    NotInSystem,
    /// The ticket is closed in the relay's ticket system.
    Closed,
    /// The relay could not check the number with its ticket system just now.
    CheckUnavailable,
}

/// Language of the agent's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Lang {
    De,
    En,
}

impl Lang {
    /// English if the locale says so, German otherwise (the schools we serve are German).
    pub(crate) fn from_env() -> Self {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    return if v.starts_with("en") {
                        Lang::En
                    } else {
                        Lang::De
                    };
                }
            }
        }
        Lang::De
    }

    fn pick(self, de: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => en,
        }
    }

    pub(crate) fn waiting_title(self) -> &'static str {
        self.pick(
            "Fernhilfe – Warten auf Support",
            "Fernhilfe – waiting for support",
        )
    }
    pub(crate) fn waiting_lines(self, ticket: TicketNumber, code: &str) -> Vec<String> {
        vec![
            format!("{} {ticket}", self.pick("Ticket", "Ticket")),
            self.pick("Ihr Sitzungscode:", "Your session code:")
                .to_owned(),
            code.to_owned(),
            self.pick(
                "Nennen Sie diesen Code dem Support am Telefon.",
                "Read this code to the support staff on the phone.",
            )
            .to_owned(),
        ]
    }
    /// The wrong tries so far, shown under the code.
    pub(crate) fn wrong_tries(self, wrong: u32, max: u32) -> String {
        match self {
            Lang::De => format!("Falsche Codes: {wrong} von höchstens {max}"),
            Lang::En => format!("Wrong codes: {wrong} of at most {max}"),
        }
    }
    pub(crate) fn reconnecting(self) -> &'static str {
        self.pick(
            "Verbindung zum Server unterbrochen – verbinde neu …",
            "Connection to the server lost – reconnecting …",
        )
    }
    pub(crate) fn locked_title(self) -> &'static str {
        self.pick(
            "Fernhilfe – aus Sicherheitsgründen beendet",
            "Fernhilfe – stopped for security",
        )
    }
    /// The final message after too many wrong codes (German, then English).
    pub(crate) fn locked_lines() -> [&'static str; 4] {
        [
            "Zu viele falsche Codes: Fernhilfe wurde beendet.",
            "Bitte rufen Sie die Hotline erneut an und starten Sie Fernhilfe neu.",
            "Too many wrong codes: Fernhilfe has stopped.",
            "Please call the hotline again and start Fernhilfe anew.",
        ]
    }
    pub(crate) fn cancel(self) -> &'static str {
        self.pick("Abbrechen", "Cancel")
    }
    pub(crate) fn ticket_title(self) -> &'static str {
        self.pick("Fernhilfe – Ticketnummer", "Fernhilfe – ticket number")
    }
    pub(crate) fn ticket_prompt(self) -> &'static str {
        self.pick(
            "Ticketnummer, die Ihnen die Hotline genannt hat:",
            "The ticket number the hotline gave you:",
        )
    }
    pub(crate) fn next(self) -> &'static str {
        self.pick("Weiter", "Continue")
    }
    /// What is wrong with the number typed, in German and English whatever the language: the
    /// IT contact may be reading it out to the hotline.
    pub(crate) fn ticket_problem(p: TicketProblem) -> [&'static str; 2] {
        match p {
            TicketProblem::NotDigits => [
                "Bitte nur Ziffern eingeben (z. B. 4711).",
                "Digits only, please (e.g. 4711).",
            ],
            TicketProblem::Empty => [
                "Bitte die Ticketnummer eingeben.",
                "Please type the ticket number.",
            ],
            TicketProblem::TooLong => [
                "Diese Nummer ist zu lang für eine Ticketnummer.",
                "This number is too long for a ticket number.",
            ],
            TicketProblem::NotInSystem => [
                "Das Ticketsystem kennt diese Nummer nicht. Bitte prüfen.",
                "The ticket system does not know this number. Please check it.",
            ],
            TicketProblem::Closed => [
                "Dieses Ticket ist geschlossen. Bitte die aktuelle Nummer erfragen.",
                "This ticket is closed. Please ask for the current number.",
            ],
            TicketProblem::CheckUnavailable => [
                "Die Nummer konnte gerade nicht geprüft werden. Gleich noch einmal auf Weiter.",
                "The number could not be checked just now. Press Continue again shortly.",
            ],
        }
    }
    pub(crate) fn consent_title(self) -> &'static str {
        self.pick("Fernhilfe – Zustimmung", "Fernhilfe – consent")
    }
    pub(crate) fn consent_lines(self, staff: &str, ticket: TicketNumber) -> Vec<String> {
        match self {
            Lang::De => vec![
                format!("{staff} (Support) möchte Ihren Bildschirm sehen"),
                format!("Ticket {ticket}. Sie können jederzeit beenden."),
            ],
            Lang::En => vec![
                format!("{staff} (support) wants to see your screen"),
                format!("Ticket {ticket}. You can end the session at any time."),
            ],
        }
    }
    pub(crate) fn deny(self) -> &'static str {
        self.pick("Ablehnen", "Decline")
    }
    pub(crate) fn view_only(self) -> &'static str {
        self.pick("Nur ansehen", "View only")
    }
    pub(crate) fn view_and_control(self) -> &'static str {
        self.pick("Ansehen und steuern", "View and control")
    }
    pub(crate) fn indicator_title(self) -> &'static str {
        self.pick("Fernhilfe – Sitzung läuft", "Fernhilfe – session running")
    }
    pub(crate) fn indicator_line(self, staff: &str, control: bool) -> String {
        match (self, control) {
            (Lang::De, false) => format!("{staff} sieht Ihren Bildschirm"),
            (Lang::De, true) => format!("{staff} sieht und steuert"),
            (Lang::En, false) => format!("{staff} sees your screen"),
            (Lang::En, true) => format!("{staff} sees and controls"),
        }
    }
    pub(crate) fn end(self) -> &'static str {
        self.pick("Beenden", "End")
    }
    pub(crate) fn allow_control(self) -> &'static str {
        self.pick("Steuern erlauben", "Allow control")
    }
    pub(crate) fn revoke_control(self) -> &'static str {
        self.pick("Nur ansehen", "View only")
    }
    pub(crate) fn go_on(self) -> &'static str {
        self.pick("Weiter", "Go on")
    }
    /// The indicator's warning before a session ends by itself.
    pub(crate) fn ending_line(self, limit: protocol::session_limits::Limit, secs: u64) -> String {
        use protocol::session_limits::Limit;
        match (self, limit) {
            (Lang::De, Limit::Idle) => {
                format!("Ungenutzt: endet in {secs} s – „Weiter“ hält sie offen")
            }
            (Lang::De, Limit::Max) => {
                format!("Höchstdauer: endet in {secs} s – „Weiter“ verlängert")
            }
            (Lang::En, Limit::Idle) => format!("Unused: ends in {secs} s – “Go on” keeps it open"),
            (Lang::En, Limit::Max) => {
                format!("Longest duration: ends in {secs} s – “Go on” extends it")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_summarised_by_kind_through_the_context_chain() {
        let unreachable = anyhow::Error::new(transport::TransportError::Unreachable {
            addr: "relay.example:443".into(),
            reason: "no answer within 5 s".into(),
        })
        .context("registering");
        assert!(failure_summary(&unreachable)[0].contains("nicht erreichbar"));
        // As registration reports it: wrapped in the signaling error.
        let signaled = anyhow::Error::new(transport::relay_client::SignalError::Transport(
            transport::TransportError::FingerprintMismatch {
                expected: "AA".into(),
                got: "BB".into(),
            },
        ));
        assert!(failure_summary(&signaled)[0].contains("nicht als Ihr Fernhilfe-Server"));
        let pin = anyhow::Error::new(transport::TransportError::UntrustedRelay("x".into()));
        assert!(failure_summary(&pin)[1].contains("did not prove"));
        assert!(failure_summary(&anyhow::anyhow!("other"))[0].contains("Hotline"));
    }
}

//! Session reports into a real Request Tracker 5 (Debian's packages, SQLite, `rt-server` on
//! loopback): the comments a session leaves on its ticket, tickets refused at registration,
//! and a report that waits while RT is down and arrives once when it is back.

use base64::Engine;
use e2e::*;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const RT_SERVER: &str = "/usr/share/request-tracker5/libexec/rt-server";
const RT_LIB: &str = "/usr/share/request-tracker5/lib";
const PASSWORD: &str = "fernhilfe-rt-test-7";

/// A running RT, in a process group of its own (it forks workers).
struct Rt {
    port: u16,
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Rt {
    /// Sets root's password and starts RT on a free loopback port.
    fn start(dir: &Path) -> Rt {
        let set = Command::new("perl")
            .args(["-I", RT_LIB, "-MRT", "-e"])
            .arg(r#"RT::LoadConfig(); RT::Init(); my $u = RT::User->new(RT->SystemUser); $u->Load("root"); my ($ok, $m) = $u->SetPassword($ARGV[0]); die "$m\n" unless $ok;"#)
            .arg(PASSWORD)
            .output()
            .expect("perl");
        assert!(
            set.status.success(),
            "cannot set RT's root password: {}",
            String::from_utf8_lossy(&set.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut rt = Rt {
            port,
            child: None,
            log: dir.join("rt-server.log"),
        };
        rt.run();
        rt
    }

    fn run(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(RT_SERVER)
            .args(["--port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start rt-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.get("/queues/all").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "RT did not come up: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}/REST/2.0{path}", self.url());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("root:{PASSWORD}"))
        );
        let r = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => agent
                .put(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(b.to_string()),
            (_, b) => agent
                .post(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(b.unwrap_or(json!({})).to_string()),
        };
        match r {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None)
    }

    fn new_ticket(&self, subject: &str) -> u64 {
        let (s, v) = self.request(
            "POST",
            "/ticket",
            Some(json!({ "Queue": "General", "Subject": subject })),
        );
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// The subjects of the Fernhilfe comments on a ticket.
    fn fernhilfe_comments(&self, ticket: u64) -> Vec<String> {
        let (_, v) = self.get(&format!(
            "/ticket/{ticket}/attachments?fields=Subject,Content&per_page=100"
        ));
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["Subject"].as_str())
                    .filter(|s| s.starts_with("Fernhilfe"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the ticket has `n` Fernhilfe comments.
    fn wait_comments(&self, ticket: u64, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.fernhilfe_comments(ticket);
            if c.len() >= n || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        self.stop();
    }
}

fn relay_for(rt: &Rt, dir: &Path) -> Relay {
    let toml = format!(
        "public_address = \"relay.schultraeger.example:443\"\n[tickets]\nsystem = \"rt\"\nurl = \"{}\"\nuser = \"root\"\npassword_env = \"FH_TEST_RT_PASSWORD\"\nvalidate = true\nretry_base_secs = 1\n",
        rt.url()
    );
    Relay::start_at(dir, &toml, "127.0.0.1:0", |mut c| {
        c.env("FH_TEST_RT_PASSWORD", PASSWORD);
        c
    })
}

fn tools(test: &str) -> bool {
    require_tools(test, &["Xvfb", "xdotool", "perl", RT_SERVER])
}

/// A session up to *view* consent: (agent, viewer).
fn start_session(relay: &Relay, display: &Display, ticket: u64, dir: &Path) -> (Proc, Proc) {
    let agent = agent(relay, display, &ticket.to_string(), "PC-12", dir, &[]);
    let code = current_code(&agent);
    let viewer = viewer(relay, &relay.token, &ticket.to_string(), &code, dir, &[]);
    agent.wait_for(Status::ConsentAsked, T);
    answer_consent(&agent, display, "View");
    viewer.wait_line("grant View", T);
    (agent, viewer)
}

/// The person clicks *Beenden*; returns once the viewer exited.
fn end_session(display: &Display, agent: &Proc, mut viewer: Proc) {
    let (x, y) = button(agent, "indicator", "End");
    display.click(x, y);
    viewer.wait_line("ended", T);
    viewer.wait_exit(T);
}

#[test]
fn a_session_leaves_its_comments_on_a_real_rt_ticket() {
    if !tools("a_session_leaves_its_comments_on_a_real_rt_ticket") {
        return;
    }
    let dir = temp_dir("rt-session");
    let rt = Rt::start(&dir);
    let display = Display::start(1280, 800);
    let _probe = probe(&display, &dir);
    let relay = relay_for(&rt, &dir);
    let ticket = rt.new_ticket("Drucker in Raum 12 druckt nicht");
    let (agent, viewer) = start_session(&relay, &display, ticket, &dir);
    end_session(&display, &agent, viewer);
    let comments = rt.wait_comments(ticket, 2, T);
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert!(
        comments[0].starts_with("Fernhilfe: Sitzung mit PC-12 gestartet [fernhilfe-"),
        "{comments:?}"
    );
    assert!(
        comments[1].starts_with("Fernhilfe: Sitzung mit PC-12 beendet [fernhilfe-"),
        "{comments:?}"
    );
    let (_, t) = rt.get(&format!("/ticket/{ticket}"));
    assert!(
        t["TimeWorked"]
            .as_str()
            .unwrap_or("0")
            .parse::<u32>()
            .unwrap()
            >= 1,
        "{t}"
    );
    let (_, items) = rt.get(&format!(
        "/ticket/{ticket}/attachments?fields=Subject,Content&per_page=100"
    ));
    let content = |subject: &str| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Subject"].as_str().is_some_and(|s| s.contains(subject)))
            .and_then(|i| i["Content"].as_str())
            .unwrap()
            .to_owned()
    };
    // The start comment carries the link a technician clicks for the next session.
    let start = content("gestartet");
    let link = format!("fernhilfe://relay.schultraeger.example:443/ticket/{ticket}");
    assert!(
        start.contains(&link),
        "no link in the start comment:\n{start}"
    );
    let end = content("beendet");
    let text = end.as_str();
    for part in [
        "Support: Anna Schmidt",
        "Zustimmung erteilt: nur ansehen",
        "am PC beendet",
    ] {
        assert!(text.contains(part), "'{part}' not in the comment:\n{text}");
    }
    // No more than those two, even after the outbox had time to misbehave.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rt.fernhilfe_comments(ticket).len(), 2);
    let shown = relay.audit_cmd(&["show", &ticket.to_string()]);
    assert_eq!(shown.matches(": zugestellt").count(), 2, "{shown}");
}

#[test]
fn an_unknown_or_closed_ticket_is_refused_at_registration() {
    if !tools("an_unknown_or_closed_ticket_is_refused_at_registration") {
        return;
    }
    let dir = temp_dir("rt-refused");
    let rt = Rt::start(&dir);
    let display = Display::start(1280, 800);
    let relay = relay_for(&rt, &dir);
    let mut unknown = agent(&relay, &display, "987654", "PC-12", &dir, &[]);
    assert_eq!(unknown.wait_exit(T), 1);
    let said = unknown.stderr();
    assert!(
        said.contains("no ticket with this number") && said.contains("kennt keine Ticketnummer"),
        "{said}"
    );
    let closed = rt.new_ticket("erledigt");
    let (s, v) = rt.request(
        "PUT",
        &format!("/ticket/{closed}"),
        Some(json!({ "Status": "resolved" })),
    );
    assert_eq!(s, 200, "{v}");
    let mut refused = agent(&relay, &display, &closed.to_string(), "PC-12", &dir, &[]);
    assert_eq!(refused.wait_exit(T), 1);
    let said = refused.stderr();
    assert!(
        said.contains("ticket is closed") && said.contains("geschlossen"),
        "{said}"
    );
    // An open ticket registers.
    let open = rt.new_ticket("offen");
    let ok = agent(&relay, &display, &open.to_string(), "PC-12", &dir, &[]);
    ok.wait_line("registered", T);
}

#[test]
fn a_report_waits_while_rt_is_down_and_arrives_once() {
    if !tools("a_report_waits_while_rt_is_down_and_arrives_once") {
        return;
    }
    let dir = temp_dir("rt-down");
    let mut rt = Rt::start(&dir);
    let display = Display::start(1280, 800);
    let _probe = probe(&display, &dir);
    let relay = relay_for(&rt, &dir);
    let ticket = rt.new_ticket("RT fällt aus");
    let (agent, viewer) = start_session(&relay, &display, ticket, &dir);
    assert_eq!(rt.wait_comments(ticket, 1, T).len(), 1, "the start report");
    // RT goes down in the middle of the session; the session does not notice.
    rt.stop();
    end_session(&display, &agent, viewer);
    let deadline = Instant::now() + T;
    loop {
        let shown = relay.audit_cmd(&["show", &ticket.to_string()]);
        if shown.contains("ausstehend") && !shown.contains("ausstehend (0") {
            println!("{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed try recorded:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rt.run();
    let comments = rt.wait_comments(ticket, 2, Duration::from_secs(60));
    assert_eq!(comments.len(), 2, "{comments:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rt.fernhilfe_comments(ticket).len(), 2, "posted twice");
    let shown = relay.audit_cmd(&["show", &ticket.to_string()]);
    assert_eq!(shown.matches(": zugestellt").count(), 2, "{shown}");
}

/// Pixels in the window `win` of `display` drawn in the agent's warning red.
fn red_pixels(display: &Display, win: &str) -> usize {
    let geo = display
        .xdotool(&["getwindowgeometry", "--shell", win])
        .unwrap();
    let get = |k: &str| -> u32 {
        geo.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (x0, y0, w, h) = (get("X"), get("Y"), get("WIDTH"), get("HEIGHT"));
    let shot = display.screenshot();
    let mut n = 0;
    for y in y0..(y0 + h).min(shot.height()) {
        for x in x0..(x0 + w).min(shot.width()) {
            if shot.get_pixel(x, y).0 == [0xB3, 0x26, 0x1E] {
                n += 1;
            }
        }
    }
    n
}

/// Started without `--ticket` (a double-click), the agent asks for the number in its window:
/// letters are refused on screen, a closed ticket is refused with the reason on screen, and
/// the open ticket typed after it registers.
#[test]
fn the_ticket_typed_into_the_agent_window_registers_and_a_closed_one_is_refused() {
    if !tools("the_ticket_typed_into_the_agent_window_registers_and_a_closed_one_is_refused") {
        return;
    }
    let dir = temp_dir("rt-window");
    let rt = Rt::start(&dir);
    let display = Display::start(1280, 800);
    let relay = relay_for(&rt, &dir);
    let closed = rt.new_ticket("schon erledigt");
    let (s, v) = rt.request(
        "PUT",
        &format!("/ticket/{closed}"),
        Some(json!({ "Status": "resolved" })),
    );
    assert_eq!(s, 200, "{v}");
    let open = rt.new_ticket("Beamer in Raum 3");
    let mut cmd = Command::new(bin_dir().join("fernhilfe-agent"));
    cmd.args([
        "--relay",
        &relay.addr,
        "--relay-fingerprint",
        &relay.fingerprint,
    ])
    .args(["--host-name", "PC-12", "--lang", "de"])
    .env("DISPLAY", &display.name);
    let mut agent = Proc::spawn("agent-asking", cmd, &dir);
    agent.wait_line("ui ticket asked", T);
    let win = display
        .xdotool(&["search", "--sync", "--name", "Ticketnummer"])
        .unwrap()
        .trim()
        .to_owned();
    display.xdotool(&["windowfocus", "--sync", &win]).unwrap();
    let before = agent.lines().len();
    display.xdotool(&["type", "--delay", "60", "12a"]).unwrap();
    agent.wait_line_from(
        before,
        |l| l == "ui ticket problem NotDigits",
        T,
        "the warning about letters",
    );
    assert!(red_pixels(&display, &win) > 100, "no warning on screen");
    display
        .xdotool(&["key", "--delay", "60", "BackSpace", "BackSpace"])
        .unwrap();
    let typed = |number: u64| {
        display
            .xdotool(&["type", "--delay", "60", &number.to_string()])
            .unwrap();
        display.xdotool(&["key", "Return"]).unwrap();
    };
    typed(closed);
    agent.wait_line(&format!("ticket typed #{closed}"), T);
    agent.wait_line("ui ticket problem Closed", T);
    let win = display
        .xdotool(&["search", "--sync", "--name", "Ticketnummer"])
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        red_pixels(&display, &win) > 100,
        "the refusal is not on screen"
    );
    display.xdotool(&["windowfocus", "--sync", &win]).unwrap();
    typed(open);
    agent.wait_line(&format!("registered ticket=#{open}"), T);
    agent.wait_line("code ", T);
    assert!(agent.running());
    agent.kill();
}

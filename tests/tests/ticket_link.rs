//! Starting the viewer from the ticket's `fernhilfe://` link: the technician clicks it and only
//! types the code the school reads out. A link names relay and ticket only, and a link for
//! another relay than the viewer's own is refused before the staff token goes anywhere.

use e2e::*;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn viewer_from_link(relay: &Relay, link: &str, display: &Display) -> Command {
    // Set up as a technician's machine is: relay and pin in the environment (or the config
    // file next to the viewer), never on the link's command line.
    let mut cmd = Command::new(bin_dir().join("fernhilfe-viewer"));
    cmd.args(["--link", link])
        .env("FERNHILFE_RELAY", &relay.addr)
        .env("FERNHILFE_RELAY_FINGERPRINT", &relay.fingerprint)
        .env("FERNHILFE_STAFF_TOKEN", &relay.token)
        .env("DISPLAY", &display.name);
    cmd
}

#[test]
fn a_technician_clicks_the_link_and_types_only_the_code() {
    if !require_tools("link_then_code", &["Xvfb", "xdotool"]) {
        return;
    }
    let dir = temp_dir("ticket_link");
    let pc = Display::start(800, 600);
    let desk = Display::start(1280, 900);
    let relay = Relay::start(&dir);
    let agent = agent(&relay, &pc, "4711", "PC-12", &dir, &[]);
    let code = current_code(&agent);
    let link = format!("fernhilfe://{}/ticket/4711", relay.addr);
    let viewer = Proc::spawn("link-viewer", viewer_from_link(&relay, &link, &desk), &dir);
    viewer.wait_line("ui code asked", T);
    let win = desk
        .xdotool(&["search", "--sync", "--name", "Sitzungscode"])
        .unwrap()
        .trim()
        .to_owned();
    desk.xdotool(&["windowfocus", "--sync", &win]).unwrap();
    // A slip first (a letter), then the code as it is read out, in groups.
    desk.xdotool(&["type", "--delay", "60", "x"]).unwrap();
    viewer.wait_line("ui code problem digits", T);
    desk.xdotool(&["type", "--delay", "60", &code]).unwrap();
    desk.xdotool(&["key", "Return"]).unwrap();
    agent.wait_for(Status::ConsentAsked, T);
}

#[test]
fn a_link_for_another_relay_or_with_more_in_it_is_refused() {
    // Where a link came with a relay, pin, token or config of its own (arguments smuggled into
    // a URL handler's command line), the viewer goes nowhere: before, `--relay` simply won.
    if !require_tools("foreign_link", &["Xvfb"]) {
        return;
    }
    let dir = temp_dir("ticket_link_foreign");
    let desk = Display::start(640, 480);
    let relay = Relay::start(&dir);
    let own = format!("fernhilfe://{}/ticket/4711", relay.addr);
    let token_file = dir.join("stolen-token");
    std::fs::write(&token_file, "not-the-technicians").unwrap();
    let token_file = token_file.display().to_string();
    for (link, smuggled, says) in [
        (
            "fernhilfe://relay.elsewhere.example:443/ticket/4711".to_owned(),
            vec![],
            "this link is for the relay relay.elsewhere.example:443",
        ),
        (
            format!("fernhilfe://{}/ticket/4711?code=123-456-789", relay.addr),
            vec![],
            "is no Fernhilfe link",
        ),
        (
            "fernhilfe://relay.elsewhere.example:443/ticket/4711".to_owned(),
            vec!["--relay", "relay.elsewhere.example:443"],
            "--link cannot be combined with --relay",
        ),
        (
            own.clone(),
            vec!["--relay-fingerprint", &relay.fingerprint],
            "--link cannot be combined with --relay-fingerprint",
        ),
        (
            own.clone(),
            vec!["--relay-ca", "/etc/ssl/certs/ca-certificates.crt"],
            "--link cannot be combined with --relay-ca",
        ),
        (
            own.clone(),
            vec!["--token-file", &token_file],
            "--link cannot be combined with --token-file",
        ),
        (
            own.clone(),
            vec!["--config", "/dev/null"],
            "--link cannot be combined with --config",
        ),
    ] {
        let mut cmd = viewer_from_link(&relay, &link, &desk);
        cmd.args(["--headless", "--code", "123-456-789"])
            .args(smuggled);
        let mut viewer = Proc::spawn("foreign-link-viewer", cmd, &dir);
        assert_eq!(viewer.wait_exit(T), 1);
        let said = viewer.stderr();
        assert!(said.contains(says), "{said}");
    }
    // The relay never heard of the viewer: it stayed home with its token.
    assert!(
        !relay
            .audit()
            .iter()
            .any(|l| l.contains("viewer_joined") || l.contains("viewer_refused")),
        "the viewer reached the relay"
    );
}

//! A relay with a CA-issued certificate: agent and viewer trust it through `--relay-ca`
//! instead of a pinned fingerprint, and refuse it when the CA is another one.

use e2e::*;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn write_ca(dir: &std::path::Path, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} Schulträger CA"));
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), ca.pem()).unwrap();
    (ca, key)
}

#[test]
fn ca_issued_relay_certificate_is_trusted_via_relay_ca() {
    if !require_tools(
        "ca_issued_relay_certificate_is_trusted_via_relay_ca",
        &["Xvfb", "xdotool"],
    ) {
        return;
    }
    let dir = temp_dir("relayca");
    let (ca, ca_key) = write_ca(&dir, "ca");
    write_ca(&dir, "other");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("relay.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("relay.key"), leaf_key.serialize_pem()).unwrap();

    let bins = bin_dir();
    let state = dir.join("state");
    let out = Command::new(bins.join("fernhilfe-relay"))
        .arg("--state-dir")
        .arg(&state)
        .args(["staff", "add", "Anna Schmidt"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut cmd = Command::new(bins.join("fernhilfe-relay"));
    cmd.arg("--state-dir")
        .arg(&state)
        .args(["serve", "--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.join("relay.pem"))
        .arg("--key")
        .arg(dir.join("relay.key"));
    let relay = Proc::spawn("relay", cmd, &dir);
    let addr = relay
        .wait_line("fernhilfe-relay listening on udp ", T)
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();

    let display = Display::start(1024, 768);
    let ca_file = dir.join("ca.pem");
    let ca = ca_file.to_str().unwrap();
    let cmd = agent_command(&addr, ["--relay-ca", ca], "4711", &display);
    let agent = Proc::spawn("agent", cmd, &dir);
    let code = current_code(&agent);

    // A viewer trusting another CA refuses the relay.
    let other = dir.join("other.pem");
    let mut cmd = viewer_command(
        &addr,
        ["--relay-ca", other.to_str().unwrap()],
        &token,
        "4711",
        &code,
    );
    cmd.arg("--headless");
    let mut wrong = Proc::spawn("viewer-other-ca", cmd, &dir);
    assert_eq!(wrong.wait_exit(T), 1);
    assert!(
        wrong
            .stderr()
            .contains("the relay's certificate is not trusted"),
        "{}",
        wrong.stderr()
    );

    let mut cmd = viewer_command(&addr, ["--relay-ca", ca], &token, "4711", &code);
    cmd.arg("--headless");
    let viewer = Proc::spawn("viewer", cmd, &dir);
    agent.wait_for(Status::ConsentAsked, T);
    viewer.wait_line("status waiting for consent", T);
}

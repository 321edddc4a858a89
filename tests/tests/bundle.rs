//! The bundles a carrier hands out, used as a school and a technician would: unpacked from
//! the zip, started with nothing but the ticket (and the technician's token and the code), and
//! refused when someone changed the pinned key in them.

use e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// The Windows build the bundle carries: the real one where the suite built it, else a
/// stand-in file (the bundle copies it unread; the Wine tests run the real one).
fn windows_exe(dir: &Path, name: &str) -> PathBuf {
    let real = bin_dir().join(format!("../x86_64-pc-windows-gnu/release/{name}.exe"));
    if real.exists() {
        return real;
    }
    let stand_in = dir.join(format!("{name}.exe"));
    std::fs::write(&stand_in, b"MZ stand-in").unwrap();
    stand_in
}

/// Runs `fernhilfe-relay <program>-bundle` for `relay` and unzips the result into `dir/unzipped`;
/// the unpacked folder.
fn bundle(relay: &Relay, program: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{program}-bundle"));
    let name = format!("fernhilfe-{program}");
    let zip = run_checked(
        Command::new(bin_dir().join("fernhilfe-relay"))
            .arg("--state-dir")
            .arg(&relay.state)
            .arg(format!("{program}-bundle"))
            .arg("--out")
            .arg(&out)
            .args(["--address", &relay.addr])
            .arg("--linux")
            .arg(bin_dir().join(&name))
            .arg("--windows")
            .arg(windows_exe(dir, &name)),
    );
    let zip = String::from_utf8(zip.stdout).unwrap().trim().to_owned();
    assert!(zip.ends_with(&format!("{name}.zip")), "{zip}");
    let unzipped = dir.join(format!("{program}-unzipped"));
    run_checked(
        Command::new("python3")
            .args(["-c", "import sys, zipfile, os\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    p = z.extract(i, sys.argv[2])\n    os.chmod(p, (i.external_attr >> 16) & 0o777)"])
            .arg(&zip)
            .arg(&unzipped),
    );
    let folder = unzipped.join(&name);
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let readme = if program == "agent" {
        "LIESMICH.txt"
    } else {
        "README.txt"
    };
    let mut want = vec![
        name.clone(),
        format!("{name}.exe"),
        format!("{name}.toml"),
        readme.to_owned(),
    ];
    want.sort();
    assert_eq!(files, want);
    let config = std::fs::read_to_string(folder.join(format!("{name}.toml"))).unwrap();
    assert!(
        config.contains(&format!("relay = \"{}\"", relay.addr)),
        "{config}"
    );
    assert!(config.contains(&relay.fingerprint), "{config}");
    assert!(!config.contains(&relay.token), "a token in the bundle");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(folder.join(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the program is not executable");
    folder
}

#[test]
fn a_school_starts_the_bundled_agent_with_only_the_ticket_and_a_technician_the_viewer() {
    if !require_tools("bundles", &["Xvfb", "python3"]) {
        return;
    }
    let dir = temp_dir("bundle");
    let display = Display::start(800, 600);
    let relay = Relay::start(&dir);
    let agent_dir = bundle(&relay, "agent", &dir);
    let viewer_dir = bundle(&relay, "viewer", &dir);

    // The school: the program next to its config, the ticket, nothing else.
    let mut cmd = Command::new(agent_dir.join("fernhilfe-agent"));
    cmd.args(["--ticket", "4711"]).env("DISPLAY", &display.name);
    let agent = Proc::spawn("bundled-agent", cmd, &dir);
    let code = current_code(&agent);

    // The technician: the unpacked viewer, their token, ticket and code.
    let token_file = dir.join("token");
    std::fs::write(&token_file, &relay.token).unwrap();
    let mut cmd = Command::new(viewer_dir.join("fernhilfe-viewer"));
    cmd.args(["--ticket", "4711", "--code", &code, "--headless"])
        .env("FERNHILFE_STAFF_TOKEN_FILE", &token_file)
        .env_remove("FERNHILFE_STAFF_TOKEN");
    let viewer = Proc::spawn("bundled-viewer", cmd, &dir);
    agent.wait_for(Status::ConsentAsked, T);
    viewer.wait_line("status waiting for consent", T);
}

#[test]
fn a_bundle_whose_pinned_key_was_changed_does_not_connect() {
    if !require_tools("tampered bundle", &["Xvfb", "python3"]) {
        return;
    }
    let dir = temp_dir("bundle_tampered");
    let display = Display::start(800, 600);
    let relay = Relay::start(&dir);
    let agent_dir = bundle(&relay, "agent", &dir);
    let config = agent_dir.join("fernhilfe-agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // Someone points the school at their own relay key (same address, another fingerprint).
    let other = vec!["00"; 32].join(":");
    let changed = text.replace(&relay.fingerprint, &other);
    assert_ne!(text, changed);
    std::fs::write(&config, changed).unwrap();
    let mut cmd = Command::new(agent_dir.join("fernhilfe-agent"));
    cmd.args(["--ticket", "4711"]).env("DISPLAY", &display.name);
    let mut agent = Proc::spawn("tampered-agent", cmd, &dir);
    let _ = agent.wait_exit(T);
    assert!(
        !agent.lines().iter().any(|l| l.starts_with("code ")),
        "the agent registered with a relay whose key it was not told: {:?}",
        agent.lines()
    );
    assert!(
        !relay.audit().iter().any(|l| l.contains("agent_registered")),
        "the relay saw a registration"
    );
}

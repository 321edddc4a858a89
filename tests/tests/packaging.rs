//! The packages as ops install them: the Debian packages into a clean Debian made with
//! debootstrap (the systemd unit verified there, the relay started from the installed paths as
//! its own user, then that Debian booted in QEMU so its own systemd starts the hardened unit),
//! and the container image's file system run as its unprivileged user with nothing else in it
//! (and built and run with Docker where an engine runs).

use e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command, panicking with its output unless it succeeds; its standard output.
fn ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_checked(cmd).stdout).into_owned()
}

/// The Debian mirror this machine's apt uses (the only network CI allows is a registry).
fn debian_mirror() -> String {
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .or_else(|_| std::fs::read_to_string("/etc/apt/sources.list"))
        .unwrap_or_default();
    sources
        .lines()
        .filter(|l| l.starts_with("URIs:") || l.starts_with("deb "))
        .flat_map(str::split_whitespace)
        .find(|w| w.starts_with("http") && !w.contains("security"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_owned()
}

/// A process in a chroot, unmounting /proc when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Starts `relay` (the binary and its global options) in the chroot `root` as `user`, serving
/// on free loopback ports; the process and its ops address.
fn relay_in_chroot(
    name: &str,
    user: &str,
    root: &Path,
    relay: &[&str],
    dir: &Path,
) -> (Proc, String) {
    let mut cmd = Command::new("chroot");
    cmd.arg(format!("--userspec={user}"))
        .arg(root)
        .args(relay)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args([
            "--qad-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ]);
    let proc = Proc::spawn(name, cmd, dir);
    proc.wait_line("fernhilfe-relay listening on udp ", T);
    let ops = ops_address(&proc);
    (proc, ops)
}

/// Reports, on the serial console of the booted Debian, how systemd runs the relay; then
/// powers the machine off.
const UNIT_REPORT: &str = r#"#!/bin/bash
r=none
for _ in $(seq 90); do
  if exec 3<>/dev/tcp/127.0.0.1/9842; then
    printf 'GET /readyz HTTP/1.0\r\nHost: relay\r\n\r\n' >&3
    r=$(head -1 <&3 | tr -d '\r'); exec 3>&-
    case "$r" in *" 200"*) break ;; esac
  fi 2>/dev/null
  sleep 1
done
echo "REPORT readyz $r"
# The test runs a session from outside through this relay now; its timeline, once it ended.
timeline=none
for _ in $(seq 240); do
  timeline=$(runuser -u fernhilfe-relay -- fernhilfe-relay --state-dir /var/lib/fernhilfe-relay \
    --config /etc/fernhilfe/relay.toml audit show --lang en 4711 2>&1)
  case "$timeline" in *"session ended"*|*"Session ended"*) break ;; esac
  sleep 1
done
echo "$timeline" | sed 's/^/REPORT audit /'
pid=$(systemctl show -p MainPID --value fernhilfe-relay)
echo "REPORT unit $(systemctl show fernhilfe-relay -p ActiveState -p NRestarts | tr '\n' ' ')"
echo "REPORT user $(stat -c %U /proc/$pid)"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status | tr -d '\t' | sed 's/^/REPORT /'
echo "REPORT state $(stat -c '%a %U' /var/lib/fernhilfe-relay)"
journalctl -u fernhilfe-relay --no-pager -o cat | tail -n 30 | sed 's/^/REPORT log /'
echo "REPORT done"
"#;

const UNIT_REPORT_SERVICE: &str = "[Unit]
Description=Fernhilfe test: how systemd runs the relay
After=fernhilfe-relay.service
[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/bin/fernhilfe-unit-report
ExecStopPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
";

/// A session through the relay at `addr`, as a school PC and a technician make one: the agent
/// on a display of its own, a headless viewer, *Nur ansehen*, a frame, and the person at the
/// PC ends it (the relay records the end at once).
fn session_through(addr: &str, fingerprint: &str, token: &str, dir: &Path) {
    let trust = ["--relay-fingerprint", fingerprint];
    let display = Display::start(800, 600);
    let agent = Proc::spawn(
        "packaged-agent",
        agent_command(addr, trust, "4711", &display),
        dir,
    );
    let code = current_code(&agent);
    let mut viewer = viewer_command(addr, trust, token, "4711", &code);
    viewer.arg("--headless");
    let mut viewer = Proc::spawn("packaged-viewer", viewer, dir);
    agent.wait_for(Status::ConsentAsked, Duration::from_secs(60));
    answer_consent(&agent, &display, "View");
    viewer.wait_line("frame ", Duration::from_secs(60));
    let (x, y) = button(&agent, "indicator", "End");
    display.click(x, y);
    viewer.wait_exit(Duration::from_secs(60));
}

/// A TCP and UDP port free on loopback now.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The booted Debian's network: QEMU's user network, its address fixed.
const VM_NETWORK: &str = "[Match]
Name=en*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
";

/// Boots the Debian at `target` (the packages installed) in QEMU with a kernel from the
/// registry, so its own systemd starts `fernhilfe-relay.service` with every sandbox option
/// (system call filter, capabilities, read-only system), and checks what the relay does there:
/// it binds port 443 as its own user, answers `/readyz`, and pairs a real session (agent and
/// viewer on this machine, QEMU forwarding a loopback port to the relay's 443) whose start
/// and end it writes to its audit store.
fn boot_and_check_the_unit(target: &Path, dir: &Path, in_root: &dyn Fn(&[&str]) -> Command) {
    if !require_tools(
        "the hardened unit under a booted systemd",
        &["qemu-system-x86_64", "mke2fs", "Xvfb", "xdotool"],
    ) {
        return;
    }
    let as_relay = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg("--userspec=fernhilfe-relay:fernhilfe-relay")
            .arg(target)
            .args([
                "/usr/bin/fernhilfe-relay",
                "--state-dir",
                "/var/lib/fernhilfe-relay",
                "--config",
                "/etc/fernhilfe/relay.toml",
            ])
            .args(args);
        c
    };
    let token = ok(&mut as_relay(&["staff", "add", "Anna Schmidt"]))
        .trim()
        .to_owned();
    let fingerprint = ok(&mut as_relay(&["fingerprint"])).trim().to_owned();
    // A kernel to boot, and systemd as the init it starts.
    let kernel_and_init =
        "apt-get install -y -q --no-install-recommends linux-image-amd64 systemd-sysv";
    ok(&mut in_root(&["sh", "-c", kernel_and_init]));
    for (path, text) in [
        ("etc/systemd/network/10-qemu.network", VM_NETWORK),
        ("usr/local/bin/fernhilfe-unit-report", UNIT_REPORT),
        (
            "etc/systemd/system/fernhilfe-unit-report.service",
            UNIT_REPORT_SERVICE,
        ),
    ] {
        std::fs::write(target.join(path), text).unwrap();
    }
    // As the README tells ops: enable the unit; nothing else is set up for it. The console
    // is the report's: a login prompt on it would take the terminal.
    ok(&mut in_root(&[
        "sh",
        "-c",
        "chmod 755 /usr/local/bin/fernhilfe-unit-report \
         && systemctl enable fernhilfe-relay fernhilfe-unit-report systemd-networkd \
         && systemctl mask serial-getty@ttyS0.service getty-static.service",
    ]));
    let boot = |prefix: &str| {
        std::fs::read_dir(target.join("boot"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in the Debian's /boot"))
    };
    let (kernel, initrd) = (boot("vmlinuz-"), boot("initrd.img-"));
    let image = dir.join("debian.img");
    ok(Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(target)
        .arg(&image)
        .arg("3G"));
    // Software emulation: the same everywhere, KVM or not (about 20 s to boot here).
    let console = dir.join("console.log");
    let port = free_port();
    let mut qemu = Command::new("timeout");
    qemu.arg("400")
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-nic"])
        .arg(format!(
            "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:443,hostfwd=udp:127.0.0.1:{port}-:443"
        ))
        .args(["-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", image.display()))
        .args([
            "-append",
            "root=/dev/vda rw console=ttyS0 systemd.show_status=0 panic=-1",
            "-serial",
        ])
        .arg(format!("file:{}", console.display()))
        .args(["-monitor", "none"]);
    let mut qemu = Proc::spawn("qemu", qemu, dir);
    let read_console =
        || String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
    assert!(
        wait_until(Duration::from_secs(240), || read_console()
            .contains("REPORT readyz")),
        "the booted Debian's relay never answered; its console:\n{}",
        read_console()
    );
    session_through(&format!("127.0.0.1:{port}"), &fingerprint, &token, dir);
    let status = qemu.wait_exit(Duration::from_secs(300));
    let said = read_console();
    let report: Vec<&str> = said
        .lines()
        .filter_map(|l| l.trim_start_matches(['\r', ' ']).strip_prefix("REPORT "))
        .collect();
    let report = report.join("\n");
    let _ = std::fs::remove_file(&image);
    assert!(
        status == 0 && report.contains("done"),
        "the booted Debian did not report (qemu: {status}); its console:\n{said}"
    );
    println!("the relay under the booted Debian's systemd:\n{report}");
    for want in [
        "readyz HTTP/1.0 200 OK",
        "ActiveState=active",
        "NRestarts=0",
        "user fernhilfe-relay",
        // CAP_NET_BIND_SERVICE (bit 10) and nothing else; no new privileges; the filter on.
        "CapEff:0000000000000400",
        "NoNewPrivs:1",
        "Seccomp:2",
        "state 700 fernhilfe-relay",
        "listening on udp 0.0.0.0:443",
        // The session's timeline, written by the relay under its filter.
        "session ended (ended at the PC)",
    ] {
        assert!(
            report.contains(want),
            "{want} is not in the report:\n{report}"
        );
    }
}

#[test]
fn debian_packages_install_into_a_clean_debian_and_the_relay_runs_from_them() {
    let name = "debian_packages_install_into_a_clean_debian";
    if !require_root(name)
        || !require_tools(
            name,
            &["debootstrap", "dpkg-deb", "systemd-analyze", "chroot"],
        )
    {
        return;
    }
    let dir = temp_dir("packaging_deb");
    let debs = dir.join("debs");
    // The test builds carry test aids: the package build refuses them, naming the aid ...
    let refused = Command::new(repo().join("packaging/deb/build.sh"))
        .arg(dir.join("refused"))
        .arg(bin_dir())
        .env_remove("FERNHILFE_PACKAGE_TEST_BUILD")
        .output()
        .unwrap();
    assert!(!refused.status.success(), "build.sh packaged test aids");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("carries a test or benchmark aid"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // ... and this test packages them anyway, said so explicitly, to install what it tested.
    ok(Command::new(repo().join("packaging/deb/build.sh"))
        .arg(&debs)
        .arg(bin_dir())
        .env("FERNHILFE_PACKAGE_TEST_BUILD", "1"));
    let relay_deb = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("fernhilfe-relay_"))
        .expect("the relay package");
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&relay_deb));
    for f in [
        "./usr/bin/fernhilfe-relay",
        "./lib/systemd/system/fernhilfe-relay.service",
        "./etc/fernhilfe/relay.toml",
    ] {
        assert!(contents.contains(f), "{f} not in the package:\n{contents}");
    }
    assert!(
        contents.lines().all(|l| l.contains("root/root")),
        "files not owned by root:\n{contents}"
    );

    // A clean Debian, as a new relay host has it.
    let target = dir.join("debian");
    ok(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&target)
        .arg(debian_mirror()));
    for deb in std::fs::read_dir(&debs).unwrap() {
        let deb = deb.unwrap().path();
        std::fs::copy(&deb, target.join("tmp").join(deb.file_name().unwrap())).unwrap();
    }
    let in_root = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg(&target)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    // A relay host runs systemd (minbase has none): the unit is verified against it.
    ok(&mut in_root(&[
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "systemd",
    ]));
    let relay_file = format!("/tmp/{}", relay_deb.file_name().unwrap().to_string_lossy());
    let installed = ok(&mut in_root(&["dpkg", "-i", &relay_file]));
    assert!(
        installed.contains("fernhilfe-relay installed"),
        "{installed}"
    );
    // The viewer's libraries come from the registry, as apt would fetch them.
    ok(&mut in_root(&[
        "sh",
        "-c",
        "apt-get install -y -q /tmp/fernhilfe-viewer_*.deb",
    ]));
    ok(&mut in_root(&["fernhilfe-viewer", "--version"]));

    // The user, the config's owner and mode, the unit.
    let user = ok(&mut in_root(&["getent", "passwd", "fernhilfe-relay"]));
    assert!(user.contains("/usr/sbin/nologin"), "{user}");
    let conf = ok(&mut in_root(&[
        "stat",
        "-c",
        "%a %U %G",
        "/etc/fernhilfe/relay.toml",
    ]));
    assert_eq!(conf.trim(), "640 root fernhilfe-relay");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", target.display()))
        .arg("/lib/systemd/system/fernhilfe-relay.service")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("fernhilfe-relay.service:"),
        "systemd-analyze verify complains about the unit: {said}"
    );
    let unit =
        std::fs::read_to_string(target.join("lib/systemd/system/fernhilfe-relay.service")).unwrap();
    for hardening in [
        "User=fernhilfe-relay",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "StateDirectory=fernhilfe-relay",
        "StateDirectoryMode=0700",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }

    // Start the relay as systemd would: its user, the installed binary and config, a state
    // directory of its own (0700). Ports: free ones, as the test is not the host's relay.
    let state = target.join("var/lib/fernhilfe-relay");
    std::fs::create_dir_all(&state).unwrap();
    ok(&mut in_root(&[
        "chown",
        "fernhilfe-relay:fernhilfe-relay",
        "/var/lib/fernhilfe-relay",
    ]));
    ok(&mut in_root(&["chmod", "0700", "/var/lib/fernhilfe-relay"]));
    let proc_dir = target.join("proc");
    ok(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir));
    let _proc = Mounted(proc_dir);
    let (relay, ops) = relay_in_chroot(
        "installed-relay",
        "fernhilfe-relay:fernhilfe-relay",
        &target,
        &[
            "/usr/bin/fernhilfe-relay",
            "--state-dir",
            "/var/lib/fernhilfe-relay",
            "--config",
            "/etc/fernhilfe/relay.toml",
        ],
        &dir,
    );
    let ready = ureq::get(&format!("http://{ops}/readyz")).call().unwrap();
    assert_eq!(ready.status(), 200);
    let key = ok(&mut in_root(&[
        "stat",
        "-c",
        "%a %U",
        "/var/lib/fernhilfe-relay/relay-key.pem",
    ]));
    assert!(
        key.trim().ends_with("fernhilfe-relay"),
        "the key is not the relay user's: {key}"
    );
    drop(relay);

    // The bundles from the programs the package carries (the Windows builds are there where
    // the suite built them, as in CI).
    if target
        .join("usr/lib/fernhilfe/fernhilfe-agent.exe")
        .exists()
    {
        let zip = ok(&mut in_root(&[
            "fernhilfe-relay",
            "--state-dir",
            "/var/lib/fernhilfe-relay",
            "--config",
            "/etc/fernhilfe/relay.toml",
            "agent-bundle",
            "--out",
            "/tmp/bundle",
            "--address",
            "relay.schultraeger.example:443",
        ]));
        assert!(
            target.join(zip.trim().trim_start_matches('/')).exists(),
            "{zip}"
        );
    } else {
        assert!(
            !in_ci(),
            "CI builds the Windows programs the relay package carries"
        );
        eprintln!("SKIPPED agent-bundle from the package: no Windows build to carry");
    }

    // The booted Debian mounts its own /proc; the host's must not be copied into its disk.
    drop(_proc);
    boot_and_check_the_unit(&target, &dir, &in_root);

    // An upgrade keeps the user and the config; a purge keeps the audit store.
    ok(&mut in_root(&["dpkg", "-i", &relay_file]));
    let purged = ok(&mut in_root(&["dpkg", "--purge", "fernhilfe-relay"]));
    assert!(purged.contains("kept /var/lib/fernhilfe-relay"), "{purged}");
    assert!(
        state.join("audit.sqlite").exists(),
        "the audit store went with the package"
    );
}

#[test]
fn the_container_file_system_runs_the_relay_unprivileged_with_nothing_else() {
    let name = "the_container_file_system_runs_the_relay";
    if !require_root(name) || !require_tools(name, &["chroot", "ldd"]) {
        return;
    }
    let dir = temp_dir("packaging_container");
    let context = dir.join("image");
    let rootfs = ok(Command::new(repo().join("packaging/container/rootfs.sh"))
        .arg(&context)
        .arg(bin_dir().join("fernhilfe-relay")));
    let rootfs = PathBuf::from(rootfs.trim());
    // Nothing to run but the relay: no shell, no tools.
    for absent in ["bin/sh", "usr/bin", "sbin"] {
        assert!(!rootfs.join(absent).exists(), "{absent} in the image");
    }
    let (relay, ops) = relay_in_chroot(
        "container-relay",
        "10001:10001",
        &rootfs,
        &["/fernhilfe-relay", "--state-dir", "/state"],
        &dir,
    );
    assert_eq!(
        ureq::get(&format!("http://{ops}/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );
    drop(relay);
    let key = rootfs.join("state/relay-key.pem");
    assert!(key.exists(), "no key on the state volume");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key).unwrap().uid(), 10001);
    // A volume that came up as root's (Podman's named volumes do): the relay says what to fix.
    let roots = rootfs.join("roots-volume");
    std::fs::create_dir(&roots).unwrap();
    ok(Command::new("chmod").arg("0700").arg(&roots));
    let refused = Command::new("chroot")
        .arg("--userspec=10001:10001")
        .arg(&rootfs)
        .args(["/fernhilfe-relay", "--state-dir", "/roots-volume", "serve"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains("cannot enter the state directory /roots-volume")
            && said.contains("uid 10001"),
        "{said}"
    );

    // With a Docker engine: the image itself. The issue's rule: skip without one, also in CI.
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if engine {
        ok(Command::new("docker")
            .args(["build", "-q", "-t", "fernhilfe-relay-test"])
            .arg(&context));
        let out =
            ok(Command::new("docker").args(["run", "--rm", "fernhilfe-relay-test", "--version"]));
        assert!(out.contains("fernhilfe-relay"), "{out}");
    } else {
        eprintln!("SKIPPED docker build/run: no Docker engine on this machine (the file system above is the image's)");
    }
    image_under_podman(&context, &dir);
}

/// Podman, daemonless, with what works inside an unprivileged build container: files for
/// storage, runc with plain cgroupfs.
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args([
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    c
}

/// Limits the container may keep: raising them needs a privilege the build container lacks.
const PODMAN_LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=4096:4096",
    "--ulimit",
    "nproc=4096:4096",
];

/// The image built from the `Dockerfile` and run as ops would with Podman, where Podman can
/// run containers: its state on a directory owned by 10001, port 443 published, and a real
/// session through it.
fn image_under_podman(context: &Path, dir: &Path) {
    if !require_tools("the image under podman", &["podman", "runc"]) {
        return;
    }
    let tag = format!("fernhilfe-relay-test-{}", std::process::id());
    ok(podman().args(["build", "-q", "-t", &tag]).arg(context));
    let runs = podman()
        .args(["run", "--rm", "--network", "none"])
        .args(PODMAN_LIMITS)
        .args([&tag, "--version"])
        .output()
        .unwrap();
    if !runs.status.success() {
        eprintln!(
            "SKIPPED podman run: podman cannot start containers here: {}",
            String::from_utf8_lossy(&runs.stderr).trim()
        );
        let _ = podman().args(["rmi", "-f", &tag]).status();
        return;
    }
    let state = dir.join("podman-state");
    std::fs::create_dir(&state).unwrap();
    ok(Command::new("chown").arg("10001:10001").arg(&state));
    ok(Command::new("chmod").arg("0700").arg(&state));
    let volume = format!("{}:/state", state.display());
    let in_image = |args: &[&str]| {
        let mut c = podman();
        c.args(["run", "--rm", "--network", "none", "-v", &volume])
            .args(PODMAN_LIMITS)
            .arg(&tag)
            .args(args);
        ok(&mut c).trim().to_owned()
    };
    let token = in_image(&["staff", "add", "Anna Schmidt"]);
    let fingerprint = in_image(&["fingerprint"]);
    let (port, ops) = (free_port(), free_port());
    let name = tag.clone();
    ok(podman()
        .args(["run", "-d", "--name", &name, "--network", "slirp4netns"])
        // Docker lets unprivileged users bind low ports in a container's network; Podman is
        // told so (the Dockerfile says the same for ops).
        .args(["--sysctl", "net.ipv4.ip_unprivileged_port_start=0"])
        .args(["-p", &format!("127.0.0.1:{port}:443/udp")])
        .args(["-p", &format!("127.0.0.1:{port}:443/tcp")])
        .args(["-p", &format!("127.0.0.1:{ops}:9842/tcp")])
        .args(["-v", &volume])
        .args(PODMAN_LIMITS)
        .arg(&tag));
    let ready = wait_until(Duration::from_secs(30), || {
        ureq::get(&format!("http://127.0.0.1:{ops}/readyz"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
    let logs = || {
        let out = podman().args(["logs", &name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    if ready {
        session_through(&format!("127.0.0.1:{port}"), &fingerprint, &token, dir);
    }
    let said = logs();
    let _ = podman().args(["rm", "-f", &name]).status();
    let _ = podman().args(["rmi", "-f", &tag]).status();
    assert!(
        ready,
        "the container's relay never answered /readyz: {said}"
    );
    assert!(
        said.contains("session ended") && said.contains("EndedAtAgent"),
        "no session ended in the container's log: {said}"
    );
}

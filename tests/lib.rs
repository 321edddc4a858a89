//! Harness for Fernhilfe's end-to-end tests: Xvfb displays, and relay, agent, viewer and probe
//! processes on loopback, each killed when its handle drops.
//!
//! Tests that need a tool this machine lacks (Xvfb, xdotool, tcpdump, root) skip with a message
//! outside CI and fail in CI (`CI=true`), so CI can never pass by skipping.

pub mod netlab;
pub mod wine;

/// The status lines agent and viewer print, as the tests read them.
pub use protocol::session::EndReason;
pub use protocol::status::Status;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether this run is CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks that `tools` are on PATH; returns false (skip) outside CI, panics in CI.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: needs {} (install: scripts/setup.sh)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Whether the test may use root's powers: true as root; otherwise false (skip) outside CI,
/// and a failure in CI, where tests run as root.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let msg = format!("{test}: needs root (network namespaces, packet capture)");
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Whether we run as root (needed for tcpdump and network namespaces).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Directory holding the workspace's built binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    for b in [
        "fernhilfe-relay",
        "fernhilfe-agent",
        "fernhilfe-viewer",
        "xprobe",
        "natprobe",
    ] {
        assert!(dir.join(b).exists(), "{} missing: run `cargo build --workspace --bins` before the tests (scripts/test.sh does)", dir.join(b).display());
    }
    dir
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fernhilfe-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A child process whose stdout lines are collected, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    /// When each stdout line arrived, by index (for latencies between processes).
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stderr_path: PathBuf,
}

impl Proc {
    /// Spawns `cmd`, collecting stdout; stderr goes to a file in `dir` for failure messages.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let stderr_path = dir.join(format!("{name}.stderr"));
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let l2 = lines.clone();
        let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let a2 = arrivals.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // The time first: a line is only seen once its time is there.
                a2.lock().unwrap().push(Instant::now());
                let (m, cv) = &*l2;
                m.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            arrivals,
            stderr_path,
        }
    }

    /// When stdout line `i` arrived.
    pub fn arrival(&self, i: usize) -> Instant {
        self.arrivals.lock().unwrap()[i]
    }

    /// All stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits for a stdout line matching `pred` at or after line index `from`; panics on timeout.
    pub fn wait_line_from(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
        what: &str,
    ) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut g = m.lock().unwrap();
        loop {
            if let Some((i, l)) = g.iter().enumerate().skip(from).find(|(_, l)| pred(l)) {
                return (i, l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                drop(g);
                panic!(
                    "{}: timed out waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for a line starting with `prefix`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        self.wait_line_from(
            0,
            |l| l.starts_with(prefix),
            timeout,
            &format!("'{prefix}'"),
        )
        .1
    }

    /// The status lines ([`Status`]) printed so far, read back through the type that prints
    /// them.
    pub fn statuses(&self) -> Vec<Status> {
        self.lines().iter().filter_map(|l| l.parse().ok()).collect()
    }

    /// Waits for the first status line `pick` takes; what it took from it.
    pub fn wait_status<T>(&self, timeout: Duration, pick: impl Fn(Status) -> Option<T>) -> T {
        let (_, line) = self.wait_line_from(
            0,
            |l| l.parse().ok().and_then(&pick).is_some(),
            timeout,
            "a status line",
        );
        pick(line.parse().expect("parsed above")).expect("picked above")
    }

    /// Waits for the status line `want`.
    pub fn wait_for(&self, want: Status, timeout: Duration) {
        self.wait_status(timeout, |s| (s == want).then_some(()))
    }

    /// Waits until the session ended for `reason` (the agent's `session ended` line).
    pub fn wait_ended(&self, reason: protocol::session::EndReason, timeout: Duration) {
        self.wait_status(timeout, |s| {
            (s == Status::SessionEnded(reason)).then_some(())
        })
    }

    /// Takes the child's stdin, for a thread of the test to write to.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Sends a line to stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to child stdin");
        stdin.flush().expect("flush");
    }

    /// Waits for exit; returns the exit code (panics on timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM, as systemd does) and waits for its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> i32 {
        run_checked(Command::new("kill").args(["-TERM", &self.pid().to_string()]));
        self.wait_exit(timeout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Xvfb display, killed on drop.
pub struct Display {
    pub name: String,
    child: Child,
}

impl Display {
    /// Starts Xvfb on a free display number with the given size.
    pub fn start(width: u32, height: u32) -> Display {
        static NEXT: Mutex<u32> = Mutex::new(0);
        for _ in 0..50 {
            let n = {
                let mut g = NEXT.lock().unwrap();
                *g += 1;
                100 + (std::process::id() % 200) * 10 + *g % 10 + (*g / 10) * 2000
            };
            if Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let name = format!(":{n}");
            let child = Command::new("Xvfb")
                .args([
                    &name,
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-noreset",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start Xvfb");
            let mut d = Display { name, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && d.xdotool(&["getmouselocation"]).is_ok()
                {
                    return d;
                }
                if d.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start Xvfb");
    }

    /// Runs xdotool on this display.
    pub fn xdotool(&self, args: &[&str]) -> Result<String, String> {
        let o = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.name)
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Clicks like a person: press, hold briefly, release.
    pub fn click(&self, x: i32, y: i32) {
        click_on(&self.name, x, y);
    }

    /// Pointer position.
    pub fn pointer(&self) -> (i32, i32) {
        let s = self
            .xdotool(&["getmouselocation"])
            .expect("getmouselocation");
        let get = |k: &str| {
            s.split_whitespace()
                .find_map(|p| p.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .expect("pointer field")
        };
        (get("x:"), get("y:"))
    }

    /// The pointer's button and modifier state on this display (X `KeyButMask` bits: Control
    /// is 0x4, button 1 is 0x100), as every application sees it.
    pub fn held_mask(&self) -> u16 {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let (conn, n) = x11rb::connect(Some(&self.name)).expect("connect to Xvfb");
        let root = conn.setup().roots[n].root;
        u16::from(
            conn.query_pointer(root)
                .expect("query_pointer")
                .reply()
                .expect("query_pointer reply")
                .mask,
        )
    }

    /// Asks the window titled `title` to close, as a window manager's close button does
    /// (WM_DELETE_WINDOW); returns false if no such window exists.
    pub fn close_window(&self, title: &str) -> bool {
        let Ok(ids) = self.xdotool(&["search", "--name", title]) else {
            return false;
        };
        let windows: Vec<u32> = ids
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        for &win in &windows {
            self.close_window_id(win);
        }
        !windows.is_empty()
    }

    /// Asks the window `win` to close once, as a person clicks its close button, and waits up
    /// to `limit` for `owner` to exit; `owner`'s exit code.
    pub fn close_and_wait_exit(&self, win: u32, owner: &mut Proc, limit: Duration) -> i32 {
        self.close_window_id(win);
        owner.wait_exit(limit)
    }

    /// Asks the window `win` to close, as a window manager's close button does
    /// (WM_DELETE_WINDOW).
    pub fn close_window_id(&self, win: u32) {
        use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt, EventMask};
        let (conn, _) = x11rb::connect(Some(&self.name)).expect("connect to Xvfb");
        let atom = |n: &str| {
            conn.intern_atom(false, n.as_bytes())
                .expect("intern")
                .reply()
                .expect("atom")
                .atom
        };
        let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
        let ev =
            ClientMessageEvent::new(32, win, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
        conn.send_event(false, win, EventMask::NO_EVENT, ev)
            .expect("send_event");
        // A round trip before hanging up: Xvfb that sees the hang-up together with the request
        // (on a loaded machine) closes the client without reading it, and the close is lost.
        conn.get_input_focus()
            .expect("get_input_focus")
            .reply()
            .expect("get_input_focus reply");
    }

    /// Sets the keyboard layout (e.g. "de"), as the PC's settings would.
    pub fn set_layout(&self, layout: &str) {
        run_checked(Command::new("setxkbmap").args(["-display", &self.name, layout]));
    }

    /// Gives `keysyms` keycodes of their own (the top of the keycode range), as a German
    /// keyboard layout has them, so xdotool can type them without remapping keys on the fly.
    pub fn map_keysyms(&self, keysyms: &[u32]) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let (conn, _) = x11rb::connect(Some(&self.name)).expect("connect to Xvfb");
        let max = conn.setup().max_keycode;
        let first = max - keysyms.len() as u8 + 1;
        let syms: Vec<u32> = keysyms.iter().flat_map(|k| [*k, *k]).collect();
        conn.change_keyboard_mapping(keysyms.len() as u8, first, 2, &syms)
            .expect("change_keyboard_mapping");
        x11rb::wrapper::ConnectionExt::sync(&conn).expect("sync");
    }

    /// The root window's pixels now, as RGB.
    pub fn screenshot(&self) -> image::RgbImage {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
        let (conn, n) = x11rb::connect(Some(&self.name)).expect("connect to Xvfb");
        let s = &conn.setup().roots[n];
        let (w, h) = (s.width_in_pixels, s.height_in_pixels);
        let img = conn
            .get_image(ImageFormat::Z_PIXMAP, s.root, 0, 0, w, h, !0)
            .expect("get_image")
            .reply()
            .expect("get_image reply");
        let mut out = image::RgbImage::new(w as u32, h as u32);
        for (i, p) in img.data.chunks_exact(4).enumerate() {
            out.put_pixel(
                i as u32 % w as u32,
                i as u32 / w as u32,
                image::Rgb([p[2], p[1], p[0]]),
            );
        }
        out
    }
}

/// Clicks like a person on the X display named `display`: press, hold 150 ms, release. A free
/// function so a test can click from another thread while it watches the display.
pub fn click_on(display: &str, x: i32, y: i32) {
    run_checked(
        Command::new("xdotool")
            .args([
                "mousemove",
                &x.to_string(),
                &y.to_string(),
                "mousedown",
                "1",
                "sleep",
                "0.15",
                "mouseup",
                "1",
            ])
            .env("DISPLAY", display),
    );
}

/// A staff token as `staff add` issues them, naming Anna Schmidt, that no relay issued.
pub fn forged_token() -> String {
    protocol::signaling::StaffToken::issue("Anna Schmidt", &[0x42; 32])
        .unwrap()
        .0
}

/// Runs a tool to its end and panics with its stderr unless it succeeded.
pub fn run_checked(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `f` until it holds or `timeout` passed; says whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test's relay runs.
enum RelayHost {
    /// The `fernhilfe-relay` binary: its log can be read, it can be killed and restarted.
    Process(Proc),
    /// `relay::Relay::spawn` on a runtime of the test's own: no process to start, and the
    /// relay is stopped when the test drops it. Its log goes to the test process.
    InProcess {
        runtime: Option<tokio::runtime::Runtime>,
        handle: Option<Box<relay::RelayHandle>>,
    },
}

impl Drop for RelayHost {
    fn drop(&mut self) {
        if let RelayHost::InProcess { runtime, handle } = self {
            // Abort everything at once, as a killed process would; the audit writer signs
            // its checkpoint when the last handle is gone.
            drop(handle.take());
            if let Some(rt) = runtime.take() {
                rt.shutdown_background();
            }
        }
    }
}

/// A running relay with a staff member.
pub struct Relay {
    host: RelayHost,
    pub addr: String,
    /// The ops HTTP listener (/healthz, /readyz, /metrics).
    pub ops: String,
    pub fingerprint: String,
    pub state: PathBuf,
    pub token: String,
}

impl Relay {
    /// Starts a relay in this test process on free loopback ports with a fresh state dir and
    /// staff "Anna Schmidt". Tests that read the relay's log, kill it, or read its metrics
    /// (which are per process) use [`Relay::start_process`].
    pub fn start(dir: &Path) -> Relay {
        let state = dir.join("relay-state");
        let token = relay::staff::StaffRegistry::edit(&state, |r| r.add("Anna Schmidt"))
            .expect("staff add");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("relay runtime");
        let handle = runtime
            .block_on(relay::Relay::spawn(relay::RelayConfig::local(&state)))
            .expect("the relay starts");
        Relay {
            addr: handle.udp.to_string(),
            ops: handle.ops.to_string(),
            fingerprint: handle.fingerprint.to_string(),
            host: RelayHost::InProcess {
                runtime: Some(runtime),
                handle: Some(Box::new(handle)),
            },
            state,
            token,
        }
    }

    /// As [`Relay::start`], as a `fernhilfe-relay` process.
    pub fn start_process(dir: &Path) -> Relay {
        Self::start_with_config(dir, "")
    }

    /// A `fernhilfe-relay` process with `relay_toml` as its config file.
    pub fn start_with_config(dir: &Path, relay_toml: &str) -> Relay {
        Self::start_at(dir, relay_toml, "127.0.0.1:0", |c| c)
    }

    /// As [`Relay::start_with_config`], listening on `listen`, its command line passed
    /// through `wrap` (e.g. to run it in a network namespace).
    pub fn start_at(
        dir: &Path,
        relay_toml: &str,
        listen: &str,
        wrap: impl Fn(Command) -> Command,
    ) -> Relay {
        let bins = bin_dir();
        let state = dir.join("relay-state");
        let out = Command::new(bins.join("fernhilfe-relay"))
            .args(["--state-dir"])
            .arg(&state)
            .args(["staff", "add", "Anna Schmidt"])
            .output()
            .expect("staff add");
        assert!(
            out.status.success(),
            "staff add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        std::fs::write(state.join("relay.toml"), relay_toml).expect("write relay.toml");
        let mut cmd = Command::new(bins.join("fernhilfe-relay"));
        cmd.arg("--state-dir")
            .arg(&state)
            .args(["serve", "--listen", listen])
            .env("RUST_LOG", "trace");
        let proc = Proc::spawn("relay", wrap(cmd), dir);
        let addr = proc
            .wait_line("fernhilfe-relay listening on udp ", Duration::from_secs(20))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let fingerprint = proc
            .wait_line("certificate fingerprint", Duration::from_secs(5))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let ops = ops_address(&proc);
        Relay {
            host: RelayHost::Process(proc),
            addr,
            ops,
            fingerprint,
            state,
            token,
        }
    }

    /// The relay's process.
    pub fn process(&mut self) -> &mut Proc {
        match &mut self.host {
            RelayHost::Process(p) => p,
            RelayHost::InProcess { .. } => panic!(
                "this relay runs in the test process: start it with Relay::start_process to read its log or stop it"
            ),
        }
    }

    /// What the relay process wrote to stderr (its log).
    pub fn stderr(&mut self) -> String {
        self.process().stderr()
    }

    /// Kills the relay and starts it again on the same address with the same state, as an
    /// operator's restart (or a crash and its restart by systemd) would.
    pub fn restart(&mut self, dir: &Path) {
        self.process().kill();
        let mut cmd = Command::new(bin_dir().join("fernhilfe-relay"));
        cmd.arg("--state-dir")
            .arg(&self.state)
            .args(["serve", "--listen", &self.addr])
            .env("RUST_LOG", "trace");
        let proc = Proc::spawn("relay-restarted", cmd, dir);
        proc.wait_line("fernhilfe-relay listening on udp ", Duration::from_secs(20));
        self.host = RelayHost::Process(proc);
    }

    /// The audit store's records as JSON lines (`audit export`), once the relay wrote them:
    /// a record follows its event by the writer thread's turn.
    pub fn audit(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.audit_cmd(&["export"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs `fernhilfe-relay audit ARGS` on this relay's state directory; its standard output.
    pub fn audit_cmd(&self, args: &[&str]) -> String {
        relay_audit(&self.state, args).1
    }
}

/// The address of a starting relay's ops listener (/healthz, /readyz, /metrics), once it
/// printed it.
pub fn ops_address(relay: &Proc) -> String {
    relay
        .wait_line("fernhilfe-relay ops http on ", Duration::from_secs(20))
        .split(' ')
        .nth(4)
        .expect("the ops line names an address")
        .to_owned()
}

/// This test process's private PostgreSQL server (`scripts/test-postgres.sh`): its port, or
/// why there is none.
static POSTGRES: std::sync::OnceLock<Result<u16, String>> = std::sync::OnceLock::new();

/// A fresh database `name` on the test process's PostgreSQL server, as a connection string;
/// `None` (skip, with a note) where PostgreSQL is not installed outside CI, a failure in CI.
pub fn postgres_database(name: &str) -> Option<String> {
    let started = POSTGRES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fernhilfe-e2e-pg-{}", std::process::id()));
        let out =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-postgres.sh"))
                .arg(&dir)
                .arg(std::process::id().to_string())
                .output()
                .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u16>()
            .map_err(|e| e.to_string())
    });
    let port = match started {
        Ok(p) => *p,
        Err(e) if in_ci() => panic!("this test needs PostgreSQL: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: needs PostgreSQL: {e} (install: scripts/setup.sh postgresql)");
            return None;
        }
    };
    let db = format!("host=127.0.0.1 port={port} user=postgres dbname={name}");
    postgres_admin(&db, &format!("DROP DATABASE IF EXISTS {name}"));
    postgres_admin(&db, &format!("CREATE DATABASE {name}"));
    Some(db)
}

/// Runs `sql` as the superuser on the server the connection string `db` (from
/// [`postgres_database`]) points at, in its `postgres` database.
pub fn postgres_admin(db: &str, sql: &str) {
    let port = db
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .expect("a port in the connection string");
    run_checked(
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres"])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]),
    );
}

/// Runs `fernhilfe-relay audit ARGS` on the state directory `state`; (exit code, standard
/// output).
pub fn relay_audit(state: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin_dir().join("fernhilfe-relay"))
        .arg("--state-dir")
        .arg(state)
        .arg("audit")
        .args(args)
        .output()
        .expect("run fernhilfe-relay audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The agent's command line for the relay at `addr`, trusted by `trust`
/// (`["--relay-fingerprint", FP]` or `["--relay-ca", FILE]`), on `display`.
pub fn agent_command(addr: &str, trust: [&str; 2], ticket: &str, display: &Display) -> Command {
    let mut cmd = Command::new(bin_dir().join("fernhilfe-agent"));
    cmd.args(["--ticket", ticket, "--relay", addr])
        .args(trust)
        .env("DISPLAY", &display.name);
    cmd
}

/// The viewer's command line (window mode unless `--headless` is added), trusting the relay
/// at `addr` by `trust` as in [`agent_command`].
pub fn viewer_command(
    addr: &str,
    trust: [&str; 2],
    token: &str,
    ticket: &str,
    code: &str,
) -> Command {
    let mut cmd = Command::new(bin_dir().join("fernhilfe-viewer"));
    cmd.args(["--relay", addr])
        .args(trust)
        .args(["--ticket", ticket, "--code", code])
        .env("FERNHILFE_STAFF_TOKEN", token);
    cmd
}

/// Starts an agent for `ticket` on `display`.
pub fn agent(
    relay: &Relay,
    display: &Display,
    ticket: &str,
    host: &str,
    dir: &Path,
    extra: &[&str],
) -> Proc {
    agent_env(relay, display, ticket, host, dir, extra, &[])
}

/// Starts an agent for `ticket` on `display` with extra environment variables.
pub fn agent_env(
    relay: &Relay,
    display: &Display,
    ticket: &str,
    host: &str,
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let mut cmd = agent_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        ticket,
        display,
    );
    cmd.args(["--host-name", host, "--lang", "de"])
        .args(extra)
        .envs(env.iter().copied());
    Proc::spawn(&format!("agent-{host}"), cmd, dir)
}

/// Starts a headless viewer.
pub fn viewer(
    relay: &Relay,
    token: &str,
    ticket: &str,
    code: &str,
    dir: &Path,
    extra: &[&str],
) -> Proc {
    let mut cmd = viewer_command(
        &relay.addr,
        ["--relay-fingerprint", &relay.fingerprint],
        token,
        ticket,
        code,
    );
    // `--misbehave`: the test program that breaks the rules (`misbehaving_viewer.rs`), with the
    // same command line and lines; the real viewer has no such mode.
    if extra.contains(&"--misbehave") {
        let real = cmd;
        cmd = Command::new(bin_dir().join("misbehaving-viewer"));
        cmd.args(real.get_args()).envs(
            real.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        );
        return Proc::spawn("viewer", cmd, dir);
    }
    cmd.arg("--headless").args(extra);
    Proc::spawn("viewer", cmd, dir)
}

/// Starts the probe on `display` and waits until its picture is up.
pub fn probe(display: &Display, dir: &Path) -> Proc {
    probe_with(display, dir, &[])
}

/// The probe with extra arguments (`--echo`: key presses repaint a corner with noise).
pub fn probe_with(display: &Display, dir: &Path, args: &[&str]) -> Proc {
    let mut cmd = Command::new(bin_dir().join("xprobe"));
    cmd.args(args);
    cmd.env("DISPLAY", &display.name);
    let p = Proc::spawn("xprobe", cmd, dir);
    p.wait_line("ready", Duration::from_secs(10));
    p
}

/// The code the agent currently shows.
pub fn current_code(agent: &Proc) -> String {
    let code = agent
        .lines()
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("code ").map(str::to_owned));
    code.unwrap_or_else(|| {
        agent
            .wait_line("code ", Duration::from_secs(20))
            .trim_start_matches("code ")
            .to_owned()
    })
}

/// Screen position of an agent button, from the agent's `ui button` lines (latest wins).
pub fn button(agent: &Proc, window: &str, action: &str) -> (i32, i32) {
    let prefix = format!("ui button {window} {action} ");
    let line = agent.wait_line(&prefix, Duration::from_secs(20));
    let line = agent
        .lines()
        .into_iter()
        .rev()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or(line);
    let mut it = line[prefix.len()..]
        .split_whitespace()
        .map(|v| v.parse::<i32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Clicks the consent button `choice` ("Deny", "View", "Control") on `display`, and again if
/// the dialog did not react, as a person would: a click that lands while the window is still
/// being mapped is lost.
pub fn answer_consent(agent: &Proc, display: &Display, choice: &str) {
    let (x, y) = button(agent, "consent", choice);
    for _ in 0..3 {
        display.click(x, y);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if agent
                .lines()
                .iter()
                .any(|l| l.starts_with("consent ") && l != "consent asked")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "the consent dialog did not take the click on {choice}: {:?}",
        agent.lines()
    );
}

/// Starts relay, display and agent, connects a headless viewer, and answers the consent
/// dialog by clicking `choice` ("Deny", "View", "Control") on the agent's display.
pub struct Session {
    pub dir: PathBuf,
    pub display: Display,
    pub relay: Relay,
    pub agent: Proc,
    pub viewer: Proc,
    pub probe: Proc,
}

impl Session {
    /// Sets up everything up to the open consent dialog.
    pub fn until_consent(name: &str, viewer_extra: &[&str]) -> Session {
        let dir = temp_dir(name);
        let display = Display::start(1280, 800);
        let probe = probe(&display, &dir);
        let relay = Relay::start(&dir);
        let agent = agent(&relay, &display, "4711", "PC-12", &dir, &[]);
        let code = current_code(&agent);
        let viewer = viewer(&relay, &relay.token, "4711", &code, &dir, viewer_extra);
        agent.wait_for(Status::ConsentAsked, Duration::from_secs(20));
        viewer.wait_line("status waiting for consent", Duration::from_secs(20));
        Session {
            dir,
            display,
            relay,
            agent,
            viewer,
            probe,
        }
    }

    /// Clicks a consent button (see [`answer_consent`]).
    pub fn answer(&self, choice: &str) {
        answer_consent(&self.agent, &self.display, choice);
    }

    /// Waits until the viewer got no new frame for `quiet` (see [`settle`]).
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> u64 {
        settle(&self.viewer, quiet, timeout)
    }

    /// Asks the viewer for a PNG of what it has (see [`viewer_snapshot`]).
    pub fn viewer_snapshot(&mut self, name: &str) -> image::RgbImage {
        viewer_snapshot(&mut self.viewer, &self.dir, name)
    }
}

/// Waits until a headless viewer got no new frame for `quiet`, then returns the last seq.
pub fn settle(viewer: &Proc, quiet: Duration, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = (0usize, Instant::now());
    loop {
        let n = viewer
            .lines()
            .iter()
            .filter(|l| l.starts_with("frame "))
            .count();
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() >= quiet {
            let l = viewer
                .lines()
                .into_iter()
                .rev()
                .find(|l| l.starts_with("frame seq="))
                .unwrap();
            return l["frame seq=".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "screen did not settle\nviewer:\n{}",
            viewer.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks a headless viewer for a PNG of what it has, written to `dir/name`, and loads it.
pub fn viewer_snapshot(viewer: &mut Proc, dir: &Path, name: &str) -> image::RgbImage {
    let path = dir.join(name);
    let before = viewer.lines().len();
    viewer.send(&format!("snapshot {}", path.display()));
    viewer.wait_line_from(
        before,
        |l| l.starts_with("snapshot ") || l.starts_with("error snapshot"),
        Duration::from_secs(10),
        "snapshot",
    );
    image::open(&path).expect("viewer snapshot").to_rgb8()
}

/// How many pixels differ between two pictures of the same size.
pub fn pixels_differing(a: &image::RgbImage, b: &image::RgbImage) -> usize {
    assert_eq!(a.dimensions(), b.dimensions(), "picture sizes differ");
    a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count()
}

impl Drop for Session {
    fn drop(&mut self) {
        // Keep the files of a failed test for a look; clean up after a passing one.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Probe lines of a given kind received so far.
pub fn probe_lines(probe: &Proc, prefix: &str) -> Vec<String> {
    probe
        .lines()
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

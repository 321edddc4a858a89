//! The Windows binaries under Wine: a fresh Wine prefix on an Xvfb display, with the two
//! Windows helpers from `tests/wine/` built by mingw (the `bcryptprimitives.dll` stand-in
//! Debian's Wine 8.0 lacks, and `wintext.exe`, which reads a window's text by `WM_GETTEXT`).

use crate::{in_ci, require_tools, run_checked, temp_dir, Display, Proc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Directory of the Windows release builds (`cargo build --release --target
/// x86_64-pc-windows-gnu -p agent -p viewer`, which scripts/test.sh runs before the tests).
pub fn windows_bin_dir() -> PathBuf {
    crate::bin_dir()
        .parent()
        .expect("target/")
        .join("x86_64-pc-windows-gnu/release")
}

/// Whether the Wine tests can run: the tools and the Windows builds are there. Skips with a
/// message outside CI and fails in CI, like every other missing tool.
pub fn require_wine(test: &str) -> bool {
    if !require_tools(
        test,
        &[
            "Xvfb",
            "xdotool",
            "wine",
            "wineserver",
            "x86_64-w64-mingw32-gcc",
        ],
    ) {
        return false;
    }
    let missing: Vec<PathBuf> = ["fernhilfe-agent.exe", "fernhilfe-viewer.exe"]
        .iter()
        .map(|b| windows_bin_dir().join(b))
        .filter(|p| !p.exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: needs the Windows release builds {missing:?} (cargo build --release --target x86_64-pc-windows-gnu -p agent -p viewer; scripts/test.sh does)"
    );
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// A Wine prefix of its own on one display; its wineserver is killed and the prefix removed
/// when it drops.
pub struct Wine {
    pub prefix: PathBuf,
    display: String,
    /// `wintext.exe`, built for this prefix.
    wintext: PathBuf,
    /// How long `wineboot` took to create the prefix.
    pub boot: Duration,
}

impl Wine {
    /// Creates the prefix on `display` and installs the `bcryptprimitives.dll` stand-in.
    pub fn new(name: &str, display: &Display) -> Wine {
        let dir = temp_dir(&format!("wine-{name}"));
        let prefix = dir.join("prefix");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine");
        let dll = dir.join("bcryptprimitives.dll");
        let wintext = dir.join("wintext.exe");
        mingw(&[
            "-shared",
            "-O2",
            "-s",
            "-o",
            dll.to_str().unwrap(),
            sources.join("bcryptprimitives.c").to_str().unwrap(),
            "-ladvapi32",
        ]);
        mingw(&[
            "-municode",
            "-O2",
            "-s",
            "-o",
            wintext.to_str().unwrap(),
            sources.join("wintext.c").to_str().unwrap(),
        ]);
        let mut wine = Wine {
            prefix,
            display: display.name.clone(),
            wintext,
            boot: Duration::ZERO,
        };
        let started = Instant::now();
        std::fs::create_dir_all(&wine.prefix).expect("create the Wine prefix dir");
        // The prefix's server first, with no pipes of ours: every later Wine process and
        // service attaches to it instead of starting one that inherits a test's pipes.
        let server = wine
            .command("wineserver")
            .arg("--persistent")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run wineserver");
        assert!(server.success(), "wineserver did not start");
        let boot_log = std::fs::File::create(dir.join("wineboot.log")).expect("wineboot.log");
        let booted = wine
            .command("wineboot")
            .arg("--init")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(boot_log)
            .status()
            .expect("run wineboot");
        assert!(
            booted.success(),
            "wineboot failed: {}",
            std::fs::read_to_string(dir.join("wineboot.log")).unwrap_or_default()
        );
        wine.boot = started.elapsed();
        let system32 = wine.prefix.join("drive_c/windows/system32");
        std::fs::copy(&dll, system32.join("bcryptprimitives.dll"))
            .expect("install bcryptprimitives.dll stand-in");
        wine
    }

    /// A command that runs `program` (a Windows program or a Wine tool) in this prefix.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("WINEPREFIX", &self.prefix)
            .env("DISPLAY", &self.display)
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer dialogs in a fresh prefix.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        cmd
    }

    /// `wine EXE ARGS…` in this prefix.
    pub fn run(&self, exe: &Path, args: &[&str]) -> Command {
        let mut cmd = self.command("wine");
        cmd.arg(exe).args(args);
        cmd
    }

    /// Starts Wine's notepad and waits until its edit control exists.
    pub fn notepad(&self, dir: &Path) -> Proc {
        let mut cmd = self.command("wine");
        cmd.arg("notepad");
        let p = Proc::spawn("notepad", cmd, dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.window_text("Notepad", "Edit").is_none() {
            assert!(Instant::now() < deadline, "notepad did not open");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The text of the first `child` control in the top-level window of class `class`, read
    /// by `WM_GETTEXT` from inside Wine; `None` if there is no such window.
    pub fn window_text(&self, class: &str, child: &str) -> Option<String> {
        // To a file, not a pipe: Wine's own processes (services, explorer) can inherit the
        // pipe and keep it open long after wintext.exe exited.
        let out_path = self.prefix.with_file_name("wintext.out");
        let out = std::fs::File::create(&out_path).expect("wintext.out");
        let status = self
            .run(&self.wintext, &[class, child])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .status()
            .expect("run wintext.exe");
        status
            .success()
            .then(|| std::fs::read_to_string(&out_path).unwrap_or_default())
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.command("wineserver").arg("-k").status();
        if !std::thread::panicking() {
            if let Some(dir) = self.prefix.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

fn mingw(args: &[&str]) {
    run_checked(Command::new("x86_64-w64-mingw32-gcc").args(args));
}

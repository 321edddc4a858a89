//! What a carrier hands out: for schools the agent, for technicians the viewer, each for
//! Windows and Linux with a config file that names this relay and pins its key, so a school
//! only double-clicks and types the ticket number. Written as a folder and as one zip. A
//! viewer bundle holds no staff token: each technician gets their own from ops.

use anyhow::{Context, Result};
use protocol::fingerprint::CertFingerprint;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which program a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `fernhilfe-agent`, for the schools.
    Agent,
    /// `fernhilfe-viewer`, for support staff.
    Viewer,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Self::Agent => "fernhilfe-agent",
            Self::Viewer => "fernhilfe-viewer",
        }
    }
}

/// Where the binaries come from, and where the bundle goes.
pub struct BundleRequest {
    /// Which program the bundle carries.
    pub program: Program,
    /// host:port agents and viewers reach the relay at.
    pub address: String,
    /// The relay certificate's fingerprint the bundle's config file pins.
    pub fingerprint: CertFingerprint,
    /// The Linux binary to copy in.
    pub linux: PathBuf,
    /// The Windows binary to copy in.
    pub windows: PathBuf,
    /// The directory the bundle is written to.
    pub out: PathBuf,
}

/// The directory the packages install the programs into, `../lib/fernhilfe` from the relay.
pub fn installed_programs() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| {
            e.parent()
                .and_then(Path::parent)
                .map(|d| d.join("lib/fernhilfe"))
        })
        .unwrap_or_else(|| PathBuf::from("/usr/lib/fernhilfe"))
}

fn config_text(r: &BundleRequest) -> String {
    format!(
        "# Written by `fernhilfe-relay {}-bundle`: the relay this program uses, and the\n\
         # fingerprint of its certificate (anything else answering there is refused).\n\
         relay = \"{}\"\n\
         relay_fingerprint = \"{}\"\n",
        match r.program {
            Program::Agent => "agent",
            Program::Viewer => "viewer",
        },
        r.address,
        r.fingerprint
    )
}

fn readme(program: Program) -> &'static str {
    match program {
        Program::Agent => {
            "Fernhilfe – Fernwartung für Ihre Schule\r\n\
             \r\n\
             1. Rufen Sie die Hotline an; Sie erhalten eine Ticketnummer.\r\n\
             2. Starten Sie fernhilfe-agent.exe (Windows) oder fernhilfe-agent (Linux) mit Doppelklick.\r\n\
             3. Geben Sie die Ticketnummer ein und lesen Sie dem Techniker den Code vor, der erscheint.\r\n\
             4. Sie entscheiden, ob er Ihren Bildschirm nur sieht oder auch steuern darf.\r\n\
             \x20  Ein Klick auf \"Beenden\" beendet die Sitzung jederzeit.\r\n\
             \r\n\
             fernhilfe-agent.toml muss neben dem Programm liegen: sie nennt den Server Ihres\r\n\
             Schulträgers und dessen Schlüssel. Bitte nicht ändern.\r\n\
             \r\n\
             English: call the hotline for a ticket number, double-click fernhilfe-agent(.exe), type\r\n\
             the ticket number and read the code out to the technician. You decide whether they may\r\n\
             only see or also control this PC; \"End\" stops the session at any time. Keep\r\n\
             fernhilfe-agent.toml next to the program: it names your carrier's relay and its key.\r\n"
        }
        Program::Viewer => {
            "Fernhilfe viewer – for support staff\r\n\
             \r\n\
             1. Put your staff token (from ops: fernhilfe-relay staff add \"Your Name\") in a file only\r\n\
             \x20  you can read, and set FERNHILFE_STAFF_TOKEN_FILE to it (or pass --token-file).\r\n\
             2. Click the fernhilfe: link in the ticket's session comment and type the code the school\r\n\
             \x20  reads out; or: fernhilfe-viewer --ticket 4711 --code 483-291-075\r\n\
             \r\n\
             Links on Linux: the Debian package fernhilfe-viewer registers the handler. On Windows,\r\n\
             register it once per user, with the path where you unpacked this folder:\r\n\
             \x20 reg add HKCU\\Software\\Classes\\fernhilfe /ve /d \"URL:Fernhilfe\" /f\r\n\
             \x20 reg add HKCU\\Software\\Classes\\fernhilfe /v \"URL Protocol\" /d \"\" /f\r\n\
             \x20 reg add HKCU\\Software\\Classes\\fernhilfe\\shell\\open\\command /ve /f /d \"\\\"C:\\Fernhilfe\\fernhilfe-viewer.exe\\\" --link \\\"%1\\\"\"\r\n\
             \r\n\
             fernhilfe-viewer.toml next to the program names the relay and pins its key; a link that\r\n\
             names another relay is refused.\r\n"
        }
    }
}

/// Writes `out/<program>/` and `out/<program>.zip`; returns the zip's path.
pub fn write(r: &BundleRequest) -> Result<PathBuf> {
    protocol::link::check_relay_address(&r.address)?;
    let name = r.program.name();
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for (path, file, what) in [
        (&r.linux, name.to_string(), "Linux"),
        (&r.windows, format!("{name}.exe"), "Windows"),
    ] {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the {what} {name} at {}: pass --{} PATH",
                path.display(),
                what.to_lowercase()
            )
        })?;
        files.push((file, bytes, 0o755));
    }
    files.push((format!("{name}.toml"), config_text(r).into_bytes(), 0o644));
    let readme_name = match r.program {
        Program::Agent => "LIESMICH.txt",
        Program::Viewer => "README.txt",
    };
    files.push((
        readme_name.into(),
        readme(r.program).as_bytes().to_vec(),
        0o644,
    ));

    let folder = r.out.join(name);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let zip_path = r.out.join(format!("{name}.zip"));
    let zip_file = std::fs::File::create(&zip_path)
        .with_context(|| format!("cannot create {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(zip_file);
    for (file, bytes, mode) in &files {
        let path = folder.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        zip.start_file(format!("{name}/{file}"), options)?;
        zip.write_all(bytes)?;
    }
    zip.finish()?;
    Ok(zip_path)
}

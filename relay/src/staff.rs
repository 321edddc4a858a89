//! Staff accounts: a name and a login token, of which only the SHA-256 is kept.
//!
//! Tokens are 256 random bits, so a plain hash is enough: there is nothing to brute-force that
//! a slow password hash would protect.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One staff member as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffMember {
    pub name: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// Seconds since the Unix epoch when the account was added.
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StaffFile {
    #[serde(default)]
    staff: Vec<StaffMember>,
}

/// The staff list in the relay's state directory.
pub struct StaffRegistry {
    path: PathBuf,
    file: StaffFile,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl StaffRegistry {
    /// Loads `staff.toml` from `dir`; a missing file is an empty list.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("staff.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(s) => toml::from_str(&s)
                .with_context(|| format!("{} is damaged; fix or remove it", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StaffFile::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, file })
    }

    fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(&self.file)?;
        transport::identity::write_private(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Adds a member and returns their token, which is shown once and never stored.
    pub fn add(&mut self, name: &str) -> Result<String> {
        protocol::ids::check_name("staff name", name)?;
        if self.file.staff.iter().any(|m| m.name == name) {
            bail!("staff member '{name}' exists already; remove them first to issue a new token");
        }
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw)
            .map_err(|e| anyhow::anyhow!("operating system random source failed: {e}"))?;
        let token = format!(
            "fh_{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.file.staff.push(StaffMember {
            name: name.to_owned(),
            token_sha256: token_hash(&token),
            created,
        });
        self.save()?;
        Ok(token)
    }

    /// Removes a member; their token stops working at once for new sessions.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let before = self.file.staff.len();
        self.file.staff.retain(|m| m.name != name);
        if self.file.staff.len() == before {
            bail!("no staff member named '{name}' (see `fernhilfe-relay staff list`)");
        }
        self.save()
    }

    /// All members.
    pub fn members(&self) -> &[StaffMember] {
        &self.file.staff
    }

    /// The name of the member this token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        let h = token_hash(token);
        self.file
            .staff
            .iter()
            .find(|m| m.token_sha256 == h)
            .map(|m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_authenticate_remove_persist() {
        let dir = std::env::temp_dir().join(format!("fh-staff-{}", std::process::id()));
        let mut reg = StaffRegistry::load(&dir).unwrap();
        let token = reg.add("Anna Schmidt").unwrap();
        assert!(reg.add("Anna Schmidt").is_err());
        let stored = std::fs::read_to_string(dir.join("staff.toml")).unwrap();
        assert!(!stored.contains(&token), "token must not be stored");
        let reg2 = StaffRegistry::load(&dir).unwrap();
        assert_eq!(reg2.authenticate(&token).as_deref(), Some("Anna Schmidt"));
        assert_eq!(reg2.authenticate("fh_wrong"), None);
        let mut reg3 = reg2;
        reg3.remove("Anna Schmidt").unwrap();
        assert_eq!(
            StaffRegistry::load(&dir).unwrap().authenticate(&token),
            None
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

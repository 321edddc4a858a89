//! Staff accounts: a name and a login token, of which only the SHA-256 is kept.
//!
//! Tokens are 256 random bits, so a plain hash is enough: there is nothing to brute-force that
//! a slow password hash would protect.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One staff member as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffMember {
    /// The name the token names and the consent dialog shows.
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
    protocol::hex::lower(&Sha256::digest(token.as_bytes()))
}

impl StaffRegistry {
    /// Loads the list, lets `change` edit it and saves it, all under an exclusive lock on
    /// `staff.lock`, so two `staff add` at once cannot lose one of the members.
    pub fn edit<T>(dir: &Path, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        crate::state_dir::create(dir)?;
        let lock_path = dir.join("staff.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let mut lock = fd_lock::RwLock::new(file);
        let _guard = lock
            .write()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        let mut reg = Self::load(dir)?;
        change(&mut reg)
    }

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
        // The token names its holder: the viewer shows the person at the PC no other name.
        let token = protocol::signaling::StaffToken::issue(name, &raw)?.0;
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

    /// The name of the member this token belongs to. A token must name that member itself:
    /// one issued before tokens named their holder is refused (the viewer could not check the
    /// name the relay gives it), and so is any whose name differs from the list's.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        let h = token_hash(token);
        let member = self.file.staff.iter().find(|m| m.token_sha256 == h)?;
        let named = protocol::signaling::StaffToken(token.to_owned()).staff_name()?;
        (named == member.name).then(|| member.name.clone())
    }
}

/// The staff list as the running relay sees it: read once, and again only when the file
/// changed (another inode after an edit's rename, or another size or time), off the runtime's
/// threads. A removed token stops working with the next login.
#[derive(Clone)]
pub struct StaffCache {
    dir: PathBuf,
    cached: Arc<Mutex<Option<CachedList>>>,
}

/// The list as loaded, and the file it was loaded from.
type CachedList = (FileStamp, Arc<StaffRegistry>);

#[derive(Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: std::os::unix::fs::MetadataExt::ino(&m),
        })
    }
}

impl StaffCache {
    /// A cache over `dir/staff.toml`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            cached: Arc::default(),
        }
    }

    fn current(&self) -> Result<Arc<StaffRegistry>> {
        let stamp = FileStamp::of(&self.dir.join("staff.toml"));
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(stamp), Some((seen, reg))) = (&stamp, cached.as_ref()) {
            if seen == stamp {
                return Ok(reg.clone());
            }
        }
        let reg = Arc::new(StaffRegistry::load(&self.dir)?);
        *cached = stamp.map(|s| (s, reg.clone()));
        Ok(reg)
    }

    /// The name of the member this token belongs to; a list that cannot be read admits nobody.
    pub async fn authenticate(&self, token: String) -> Option<String> {
        let cache = self.clone();
        tokio::task::spawn_blocking(move || match cache.current() {
            Ok(reg) => reg.authenticate(&token),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read the staff list; refusing logins");
                None
            }
        })
        .await
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_authenticate_remove_persist() {
        let dir = std::env::temp_dir().join(format!("fh-staff-{}", std::process::id()));
        let token = StaffRegistry::edit(&dir, |r| r.add("Anna Schmidt")).unwrap();
        assert!(StaffRegistry::edit(&dir, |r| r.add("Anna Schmidt")).is_err());
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

    #[test]
    fn a_token_counts_only_for_the_member_it_names() {
        // An account whose token names someone else (an edited list), and one from before
        // tokens named their holder: neither logs in, though the hash matches.
        let other = protocol::signaling::StaffToken::issue("Schulleitung", &[3; 32])
            .unwrap()
            .0;
        let old = format!("fh_{}", "cd".repeat(32));
        let reg = StaffRegistry {
            path: PathBuf::new(),
            file: StaffFile {
                staff: [("Anna Schmidt", &other), ("Ben Otto", &old)]
                    .into_iter()
                    .map(|(name, token)| StaffMember {
                        name: name.into(),
                        token_sha256: token_hash(token),
                        created: 0,
                    })
                    .collect(),
            },
        };
        assert_eq!(reg.authenticate(&other), None);
        assert_eq!(reg.authenticate(&old), None);
    }

    #[test]
    fn concurrent_adds_lose_nobody() {
        let dir = std::env::temp_dir().join(format!("fh-staff-lock-{}", std::process::id()));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    StaffRegistry::edit(&dir, |r| r.add(&format!("Staff {i}"))).unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(StaffRegistry::load(&dir).unwrap().members().len(), 8);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn cache_sees_removal_at_once() {
        let dir = std::env::temp_dir().join(format!("fh-staff-cache-{}", std::process::id()));
        let token = StaffRegistry::edit(&dir, |r| r.add("Anna")).unwrap();
        let cache = StaffCache::new(&dir);
        assert_eq!(
            cache.authenticate(token.clone()).await.as_deref(),
            Some("Anna")
        );
        StaffRegistry::edit(&dir, |r| r.remove("Anna")).unwrap();
        assert_eq!(cache.authenticate(token).await, None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

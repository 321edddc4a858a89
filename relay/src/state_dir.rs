//! The relay's state directory: key, staff list and audit log, readable by the relay's user only.

use anyhow::{Context, Result};
use std::path::Path;

/// Creates `dir` if needed and makes it 0700 (it holds the relay's private key).
pub fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict state directory {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_dir_and_audit_log_are_private() {
        let dir = std::env::temp_dir().join(format!("fh-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::create(&dir).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let _audit =
            audit::AuditLog::open(&dir, &audit::db::Location::Sqlite(dir.clone()), 365, None)
                .unwrap();
        assert_eq!(mode(&dir.join(audit::store::FILE)), 0o600);
        assert_eq!(mode(&dir.join(audit::store::KEY_FILE)), 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

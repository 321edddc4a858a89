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

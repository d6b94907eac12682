//! Writing a file so that readers, and a crash, see either the old contents or the new ones
//! whole: a temporary file beside it, `fsync`, rename over the target, `fsync` of the
//! directory (so the rename itself survives a power cut).
//!
//! One helper for the node's files (`mempool.dat`, `rpc.cookie`, `rpc.addr`, `p2p.addr`);
//! `net/identity.rs` keeps its own for `node.key`, which must also never replace a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes`, atomically and durably, creating it with `mode` (e.g.
/// `0o600`). The temporary file is `<path>.tmp`; one left by a crash is overwritten.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Nothing half-written is left behind (renaming onto a directory fails, say).
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.dat");
        super::write(&path, b"one", 0o600).unwrap();
        super::write(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("f.dat.tmp").exists());
    }
}

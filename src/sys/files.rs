//! Files named on the command line or in the config (the token, the config, scenario files, command bodies),
//! read with bounds before anything parses them: a regular file only, opened without blocking (a FIFO is
//! refused at once, never waited on; `/dev/zero` is refused, never read until memory runs out), and at most
//! `max_bytes` of it. Links are followed: a Kubernetes Secret mounts its files through them.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path} is not a regular file (it is {kind}); give the path of a file")]
    NotAFile { path: String, kind: &'static str },
    #[error("{path} is larger than the {max} bytes a {what} may have")]
    TooLarge { path: String, max: u64, what: &'static str },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
}

/// A file's text and whether others than its owner and group may read it.
pub struct Bounded {
    pub text: String,
    pub world_readable: bool,
}

/// Reads `path` (a `what`: "token file", "scenario file") if it is a regular file of at most `max_bytes`.
pub fn read_bounded(path: &Path, max_bytes: u64, what: &'static str) -> Result<Bounded, ReadError> {
    let shown = || path.display().to_string();
    let file = open_nonblocking(path).map_err(|source| ReadError::Open { path: shown(), source })?;
    let metadata = file.metadata().map_err(|source| ReadError::Read { path: shown(), source })?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile { path: shown(), kind: kind_of(&metadata.file_type()) });
    }
    if metadata.len() > max_bytes {
        return Err(ReadError::TooLarge { path: shown(), max: max_bytes, what });
    }
    // The size can change between the stat and the read: read one byte past the bound to notice.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|source| ReadError::Read { path: shown(), source })?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge { path: shown(), max: max_bytes, what });
    }
    let text = String::from_utf8(bytes).map_err(|_| ReadError::NotText { path: shown() })?;
    Ok(Bounded { text, world_readable: metadata.permissions().mode() & 0o004 != 0 })
}

/// Opened with `O_NONBLOCK`, so opening a FIFO nobody writes to returns at once instead of waiting.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)
}

/// Writes `bytes` to `path`, created or truncated, without following a symbolic link at `path`: a link
/// planted where an output goes (`--out DIR/junit.xml -> ~/.ssh/authorized_keys`) is refused, never
/// written through. A new file gets mode 0644 less the umask.
pub fn write_no_follow(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let mut file = opened.map_err(|err| {
        if err.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::other(format!(
                "{} is a symbolic link; outputs are not written through links",
                path.display()
            ))
        } else {
            err
        }
    })?;
    file.write_all(bytes)
}

fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_not_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let out = dir.path().join("junit.xml");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        let err = write_no_follow(&out, b"<xml/>").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let plain = dir.path().join("plain.xml");
        write_no_follow(&plain, b"one").unwrap();
        write_no_follow(&plain, b"2").unwrap();
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "2");
    }

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        assert_eq!(read_bounded(&file, 64, "token file").unwrap().text, "0123456789abcdef\n");
        let err = read_bounded(&file, 8, "token file").err().unwrap().to_string();
        assert!(err.contains("larger than the 8 bytes a token file may have"), "{err}");
        let err = read_bounded(Path::new("/dev/zero"), 64, "token file").err().unwrap().to_string();
        assert!(err.contains("is not a regular file (it is a device)"), "{err}");
        let err = read_bounded(dir.path(), 64, "token file").err().unwrap().to_string();
        assert!(err.contains("a directory"), "{err}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        let err = read_bounded(&fifo, 64, "token file").err().unwrap().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "a FIFO is refused, not waited on");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_bounded(&link, 64, "token file").is_ok(), "links are followed (Kubernetes Secrets)");
    }
}

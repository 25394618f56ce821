//! Files as the rest of the program writes them: replaced atomically (a temporary file
//! beside the target, fsync, rename over it, fsync the folder), so a crash at any moment
//! leaves either the old or the new file, never a half-written one; created 0600 in
//! folders created 0700.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Replaces the file at `path` with what `write` writes, atomically and durably. The
/// content is streamed through a 64 KiB buffer, so a large document is never held whole.
pub(crate) fn write_atomically(
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    create_private_dir(parent)?;
    // A leftover temporary file (from a crash, or put there by someone else) could carry
    // a wider mode into the new file: start from a fresh one.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
    write(&mut out)?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    File::open(parent)?.sync_all()
}

/// Replaces the file at `path` with `bytes`, as [`write_atomically`] does.
pub(crate) fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically(path, &mut |out| out.write_all(bytes))
}

/// Creates `dir` and its missing parents, each new one mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to a new file at `path` (mode 0644 before the umask), replacing only a
/// previous regular file: a symlink (whose target would be overwritten), a folder or a
/// FIFO there is an error, and the file is created without following a symlink that
/// appears meanwhile.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a regular file (a symlink?) is in the way",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(bytes)
}

/// Opens `path` for reading only if it is a regular file (after following symlinks), without
/// ever blocking: a FIFO or a device would hang the reader (and with it the lock and the
/// daemon's loop), so it is an error, as is a folder.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    open_regular_with_metadata(path).map(|(file, _)| file)
}

/// [`open_regular`], with the file's metadata as it was when opened.
pub(crate) fn open_regular_with_metadata(
    path: &Path,
) -> std::io::Result<(File, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, metadata))
}

/// Opens `path` for appending, creating it mode 0600: never through a symlink, never a FIFO
/// or device (opening one could block), only a regular file.
pub(crate) fn open_private_append(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Reads the regular file at `path` ([`open_regular`]), at most `cap` bytes: a longer one
/// is an error, read no further than `cap + 1` bytes.
pub(crate) fn read_regular(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let (file, metadata) = open_regular_with_metadata(path)?;
    // Room for the whole file at once: growing by doubling would hold up to twice its size.
    let size = metadata.len().min(cap + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes, the most avatar-sync reads"),
        ));
    }
    Ok(bytes)
}

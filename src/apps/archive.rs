//! Safe extraction and packing of app archives.
//!
//! Uploaded archives come from the network, so nothing in them is trusted. Every
//! entry of a `.tar.gz` (or plain `.tar`) or `.zip` is checked before anything is
//! written:
//!
//! - **Paths** must be relative: no leading `/`, no `..` component. `.` and empty
//!   components are dropped; in zip names a `\` counts as a separator. Names must be
//!   UTF-8. The joined path is checked once more to lie inside the destination.
//! - **Links are all refused**, symbolic and hard, whatever their target. A release
//!   is plain files; a link is never needed to serve one, and even a link that points
//!   inside the tree turns every later entry written through it, and every read the
//!   app does through it, into a possible escape. Refusing them keeps the rule simple
//!   and the tree free of surprises.
//! - **Device, FIFO, socket and sparse entries** are refused.
//! - **Limits** ([`Limits`]): the entry count, the size of one file, the total size
//!   and the ratio of written bytes to archive bytes (a guard against bombs). Sizes
//!   are counted on the bytes actually decompressed, never only on what a header
//!   claims, and the decompressed tar stream as a whole is capped too, so long-name
//!   and padding tricks cannot make the decoder run away.
//!
//! Files are written with default permissions (modes, owners and times from the
//! archive are ignored), so an upload can never create set-uid or world-writable
//! files. [`extract`] writes into a directory it creates and removes that directory
//! again on any error: a rejected archive leaves nothing behind.
//!
//! An archive may hold the app at its root or inside one top-level directory (as
//! `npm pack` makes, `package/`); [`Extracted::root`] is the directory that holds the
//! app either way.
//!
//! [`pack`] is the other direction: a release directory as a `.tar.gz` whose entries
//! sit under `package/`, links stored as links and never followed.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// The archive formats accepted, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A gzip-compressed tar (`.tar.gz`, `.tgz`, what `npm pack` writes).
    TarGz,
    /// An uncompressed tar.
    Tar,
    /// A zip archive (stored or deflated entries).
    Zip,
}

impl Format {
    /// Bytes [`Format::detect`] wants to see; fewer only rule out plain tar.
    pub const SNIFF_LEN: usize = 512;

    /// The format of an archive from its first bytes, `None` when it is none of them.
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Format::Tar)
        } else {
            None
        }
    }
}

/// How much an archive may hold once extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Entries of any kind (files and directories).
    pub max_entries: u64,
    /// Bytes of one file.
    pub max_file_bytes: u64,
    /// Bytes of all files together.
    pub max_total_bytes: u64,
    /// Written bytes per archive byte, checked once more than `ratio_floor` bytes
    /// were written.
    pub max_ratio: u64,
    /// Bytes an archive may always expand to, whatever its ratio.
    pub ratio_floor: u64,
}

impl Default for Limits {
    /// 5 000 entries, 100 MiB per file, 200 MiB in all, and at most 100 times the
    /// archive's size beyond the first 10 MiB.
    fn default() -> Self {
        Limits {
            max_entries: 5_000,
            max_file_bytes: 100 * MIB,
            max_total_bytes: 200 * MIB,
            max_ratio: 100,
            ratio_floor: 10 * MIB,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// What [`extract`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The directory holding the app: the destination, or its only top-level
    /// directory when the archive wrapped the app in one.
    pub root: PathBuf,
    /// Regular files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Why an archive was refused or could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bytes are not a tar.gz, tar or zip archive.
    #[error("not a .tar.gz, .tar or .zip archive")]
    NotAnArchive,
    /// The archive could not be read (truncated, corrupt, encrypted, bad checksum).
    #[error("unreadable archive: {0}")]
    Corrupt(String),
    /// An entry's path is unsafe.
    #[error("entry {entry:?}: {reason}")]
    UnsafePath {
        /// The entry as named in the archive.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry is a symbolic or hard link; no link is accepted.
    #[error("entry {entry:?} is a {kind}; links are not accepted")]
    Link {
        /// The entry as named in the archive.
        entry: String,
        /// `symbolic link` or `hard link`.
        kind: &'static str,
    },
    /// An entry is a device, FIFO, socket, sparse file or of an unknown type.
    #[error("entry {entry:?} is a {kind}; only files and directories are accepted")]
    Unsupported {
        /// The entry as named in the archive.
        entry: String,
        /// What kind of entry it is.
        kind: &'static str,
    },
    /// An entry clashes with an earlier one (a file where a directory is, or back).
    #[error("entry {entry:?} clashes with an earlier entry")]
    Clash {
        /// The entry as named in the archive.
        entry: String,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// One file beyond [`Limits::max_file_bytes`].
    #[error("entry {entry:?} is larger than {limit} bytes")]
    FileTooLarge {
        /// The entry as named in the archive.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// All files together beyond [`Limits::max_total_bytes`].
    #[error("the archive expands to more than {limit} bytes (at entry {entry:?})")]
    TooLarge {
        /// The entry being written when the limit was passed.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// The archive expands more than [`Limits::max_ratio`] times its size.
    #[error("the archive expands more than {ratio} times its size (at entry {entry:?})")]
    RatioTooHigh {
        /// The entry being written when the ratio was passed.
        entry: String,
        /// The limit.
        ratio: u64,
    },
    /// No file in the archive.
    #[error("the archive holds no files")]
    Empty,
    /// Writing to disk failed: the server's fault, not the archive's.
    #[error("writing the release failed: {0}")]
    Io(#[from] io::Error),
}

impl ArchiveError {
    /// Whether the archive is to blame (a client error) rather than the disk.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, ArchiveError::Io(_))
    }
}

/// Extracts `archive` into `dest`, which must not exist yet and is created here.
///
/// On any error `dest` is removed again, whatever had been written.
pub fn extract(archive: &Path, dest: &Path, limits: &Limits) -> Result<Extracted, ArchiveError> {
    fs::create_dir(dest)?;
    let result = extract_into(archive, dest, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn extract_into(archive: &Path, dest: &Path, limits: &Limits) -> Result<Extracted, ArchiveError> {
    let mut file = File::open(archive)?;
    let compressed = file.metadata()?.len();
    let mut head = Vec::with_capacity(Format::SNIFF_LEN);
    (&mut file)
        .take(Format::SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let format = Format::detect(&head).ok_or(ArchiveError::NotAnArchive)?;
    drop(file);
    let mut sink = Sink {
        dest,
        limits,
        compressed: compressed.max(1),
        entries: 0,
        files: 0,
        bytes: 0,
        stream_exceeded: Rc::new(Cell::new(false)),
    };
    match format {
        Format::TarGz => {
            let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(archive)?));
            extract_tar(decoder, &mut sink)?;
        }
        Format::Tar => extract_tar(BufReader::new(File::open(archive)?), &mut sink)?,
        Format::Zip => extract_zip(File::open(archive)?, &mut sink)?,
    }
    if sink.files == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(Extracted {
        root: app_root(dest)?,
        files: sink.files,
        bytes: sink.bytes,
    })
}

/// The directory holding the app: `dest`, or its only entry when that is a
/// directory (the one top-level directory an archive wrapped the app in).
fn app_root(dest: &Path) -> io::Result<PathBuf> {
    let mut entries = fs::read_dir(dest)?;
    let (Some(first), None) = (entries.next().transpose()?, entries.next()) else {
        return Ok(dest.to_path_buf());
    };
    if first.file_type()?.is_dir() {
        Ok(first.path())
    } else {
        Ok(dest.to_path_buf())
    }
}

/// Counts, checks and writes entries under `dest`.
struct Sink<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    /// Size of the archive file, at least 1.
    compressed: u64,
    entries: u64,
    files: u64,
    bytes: u64,
    /// Set by [`CappedReader`] when the decompressed tar stream passed its cap.
    stream_exceeded: Rc<Cell<bool>>,
}

impl Sink<'_> {
    /// Counts an entry and turns its name into a safe path below `dest`;
    /// `None` for the archive root itself (`./`).
    fn entry(&mut self, name: &str) -> Result<Option<PathBuf>, ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        let Some(relative) = safe_relative(name)? else {
            return Ok(None);
        };
        let path = self.dest.join(&relative);
        // Only normal components are left, so this holds; checked all the same.
        if !path.starts_with(self.dest) {
            return Err(unsafe_path(name, "lands outside the target directory"));
        }
        Ok(Some(path))
    }

    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let Some(path) = self.entry(name)? else {
            return Ok(());
        };
        fs::create_dir_all(&path).map_err(|error| clash_or_io(name, error))
    }

    fn file(&mut self, name: &str, declared: u64, data: &mut dyn Read) -> Result<(), ArchiveError> {
        let Some(path) = self.entry(name)? else {
            return Err(unsafe_path(name, "a file cannot be the archive root"));
        };
        let limits = self.limits;
        if declared > limits.max_file_bytes {
            return Err(ArchiveError::FileTooLarge {
                entry: name.to_owned(),
                limit: limits.max_file_bytes,
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| clash_or_io(name, error))?;
        }
        if fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_file()) {
            return Err(ArchiveError::Clash {
                entry: name.to_owned(),
            });
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|error| clash_or_io(name, error))?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            let read = match data.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.read_error(Some(name), error)),
            };
            written += read as u64;
            self.bytes += read as u64;
            if written > limits.max_file_bytes {
                return Err(ArchiveError::FileTooLarge {
                    entry: name.to_owned(),
                    limit: limits.max_file_bytes,
                });
            }
            if self.bytes > limits.max_total_bytes {
                return Err(ArchiveError::TooLarge {
                    entry: name.to_owned(),
                    limit: limits.max_total_bytes,
                });
            }
            if self.bytes > limits.ratio_floor && self.bytes / self.compressed >= limits.max_ratio {
                return Err(ArchiveError::RatioTooHigh {
                    entry: name.to_owned(),
                    ratio: limits.max_ratio,
                });
            }
            out.write_all(&buffer[..read])?;
        }
        self.files += 1;
        Ok(())
    }

    /// A failure reading the archive: the stream cap, or a corrupt archive.
    fn read_error(&self, entry: Option<&str>, error: io::Error) -> ArchiveError {
        if self.stream_exceeded.get() {
            ArchiveError::TooLarge {
                entry: entry.unwrap_or_default().to_owned(),
                limit: self.limits.max_total_bytes,
            }
        } else {
            ArchiveError::Corrupt(error.to_string())
        }
    }
}

fn unsafe_path(entry: &str, reason: &'static str) -> ArchiveError {
    ArchiveError::UnsafePath {
        entry: entry.to_owned(),
        reason,
    }
}

/// An error creating an entry: a clash with an earlier entry, or a disk failure.
fn clash_or_io(entry: &str, error: io::Error) -> ArchiveError {
    match error.kind() {
        io::ErrorKind::AlreadyExists
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory => ArchiveError::Clash {
            entry: entry.to_owned(),
        },
        _ => ArchiveError::Io(error),
    }
}

/// The path an entry name stands for, relative and made only of normal components;
/// `None` when nothing is left (the archive root, `./`).
fn safe_relative(name: &str) -> Result<Option<PathBuf>, ArchiveError> {
    if name.is_empty() {
        return Err(unsafe_path(name, "empty path"));
    }
    if name.contains('\0') {
        return Err(unsafe_path(name, "NUL byte in the path"));
    }
    if name.starts_with('/') {
        return Err(unsafe_path(name, "absolute path"));
    }
    let mut relative = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path(name, "`..` component")),
            part => relative.push(part),
        }
    }
    // Belt and braces: the parts above can only be normal components on Unix.
    if relative
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(unsafe_path(name, "lands outside the target directory"));
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// A reader that fails once more than `cap` bytes went through it.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if read as u64 > self.remaining {
            self.exceeded.set(true);
            return Err(io::Error::other("decompressed archive exceeds its limit"));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

fn extract_tar(reader: impl Read, sink: &mut Sink<'_>) -> Result<(), ArchiveError> {
    // Room for the files plus headers, padding and long names of every entry.
    let cap = sink.limits.max_total_bytes + sink.limits.max_entries.saturating_mul(4 * 1024) + MIB;
    let capped = CappedReader {
        inner: reader,
        remaining: cap,
        exceeded: sink.stream_exceeded.clone(),
    };
    let mut archive = tar::Archive::new(capped);
    let entries = archive
        .entries()
        .map_err(|error| sink.read_error(None, error))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| sink.read_error(None, error))?;
        let name = match String::from_utf8(entry.path_bytes().into_owned()) {
            Ok(name) => name,
            Err(error) => {
                let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
                return Err(unsafe_path(&lossy, "the path is not UTF-8"));
            }
        };
        use tar::EntryType;
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                let declared = entry.size();
                sink.file(&name, declared, &mut entry)?;
            }
            EntryType::Directory => sink.dir(&name)?,
            EntryType::Symlink => {
                return Err(ArchiveError::Link {
                    entry: name,
                    kind: "symbolic link",
                })
            }
            EntryType::Link => {
                return Err(ArchiveError::Link {
                    entry: name,
                    kind: "hard link",
                })
            }
            EntryType::Char | EntryType::Block => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "device",
                })
            }
            EntryType::Fifo => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "FIFO",
                })
            }
            EntryType::GNUSparse => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "sparse file",
                })
            }
            // Archive-wide metadata (a pax global header), not a member.
            EntryType::XGlobalHeader => {
                sink.entry(".")?;
            }
            _ => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "entry of an unknown type",
                })
            }
        }
    }
    Ok(())
}

fn extract_zip(file: File, sink: &mut Sink<'_>) -> Result<(), ArchiveError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|error| ArchiveError::Corrupt(error.to_string()))?;
    if archive.len() as u64 > sink.limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            limit: sink.limits.max_entries,
        });
    }
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| ArchiveError::Corrupt(error.to_string()))?;
        let name = entry.name().replace('\\', "/");
        // Finder's resource-fork shadow tree: not part of the app.
        if name
            .split('/')
            .find(|part| !part.is_empty() && *part != ".")
            == Some("__MACOSX")
        {
            sink.entry(".")?;
            continue;
        }
        const S_IFMT: u32 = 0o170000;
        match entry.unix_mode().map(|mode| mode & S_IFMT) {
            None | Some(0) | Some(0o100000) | Some(0o040000) => {}
            Some(0o120000) => {
                return Err(ArchiveError::Link {
                    entry: name,
                    kind: "symbolic link",
                })
            }
            Some(0o020000) | Some(0o060000) => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "device",
                })
            }
            Some(0o010000) => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "FIFO",
                })
            }
            Some(_) => {
                return Err(ArchiveError::Unsupported {
                    entry: name,
                    kind: "socket or entry of an unknown type",
                })
            }
        }
        let is_dir =
            name.ends_with('/') || entry.unix_mode().map(|mode| mode & S_IFMT) == Some(0o040000);
        if is_dir {
            sink.dir(&name)?;
        } else {
            let declared = entry.size();
            sink.file(&name, declared, &mut entry)?;
        }
    }
    Ok(())
}

/// Writes `dir` as a gzip-compressed tar into `out`, entries under `package/`, and
/// hands `out` back once the stream is complete.
///
/// Directories and regular files are stored; symbolic links are stored as links and
/// never followed, so nothing outside `dir` ends up in the archive; anything else
/// (sockets, FIFOs) is skipped. Owners and times are normalised.
pub fn pack<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let prefix = Path::new("package");
    builder.append_dir(prefix, dir)?;
    pack_dir(&mut builder, dir, prefix)?;
    builder.into_inner()?.finish()
}

fn pack_dir<W: Write>(builder: &mut tar::Builder<W>, dir: &Path, name: &Path) -> io::Result<()> {
    let mut entries = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let entry_name = name.join(entry.file_name());
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            builder.append_dir(&entry_name, &path)?;
            pack_dir(builder, &path, &entry_name)?;
        } else if file_type.is_file() || file_type.is_symlink() {
            builder.append_path_with_name(&path, &entry_name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Small limits so the limit tests stay fast.
    fn small() -> Limits {
        Limits {
            max_entries: 20,
            max_file_bytes: 64 * 1024,
            max_total_bytes: 256 * 1024,
            max_ratio: 50,
            ratio_floor: 16 * 1024,
        }
    }

    /// One raw tar entry, its name written as given (the builder refuses `..`).
    fn raw(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        raw(builder, name, tar::EntryType::Regular, "", data);
    }

    fn targz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let tar = builder.into_inner().unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&tar).unwrap();
        encoder.finish().unwrap()
    }

    fn zip(build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        build(&mut writer);
        writer.finish().unwrap().into_inner()
    }

    fn zip_options() -> zip::write::SimpleFileOptions {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
    }

    /// Extracts `bytes` with `limits` into a fresh dir under a temp dir.
    fn run(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<Extracted, ArchiveError>) {
        let temp = tempfile::tempdir().unwrap();
        let archive = temp.path().join("upload");
        fs::write(&archive, bytes).unwrap();
        let result = extract(&archive, &temp.path().join("out"), limits);
        (temp, result)
    }

    /// Asserts the archive is refused and nothing of it stays on disk.
    fn refused(bytes: &[u8], limits: &Limits) -> ArchiveError {
        let (temp, result) = run(bytes, limits);
        assert!(!temp.path().join("out").exists(), "output left behind");
        assert!(!temp.path().join("evil").exists(), "escaped entry written");
        match result {
            Ok(extracted) => panic!("accepted: {extracted:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn detects_formats_by_magic_bytes() {
        assert_eq!(
            Format::detect(&targz(|b| file(b, "a", b"x"))),
            Some(Format::TarGz)
        );
        assert_eq!(
            Format::detect(&zip(|z| z.start_file("a", zip_options()).unwrap())),
            Some(Format::Zip)
        );
        let mut builder = tar::Builder::new(Vec::new());
        file(&mut builder, "a", b"x");
        assert_eq!(
            Format::detect(&builder.into_inner().unwrap()),
            Some(Format::Tar)
        );
        assert_eq!(Format::detect(b"<html>hello</html>"), None);
        assert_eq!(Format::detect(b""), None);
    }

    #[test]
    fn extracts_a_flat_tar_gz_at_its_root() {
        let bytes = targz(|b| {
            file(b, "index.ts", b"export default {}");
            file(b, "lib/util.ts", b"export {}");
        });
        let (temp, result) = run(&bytes, &Limits::default());
        let extracted = result.unwrap();
        assert_eq!(extracted.root, temp.path().join("out"));
        assert_eq!(extracted.files, 2);
        assert_eq!(extracted.bytes, 26);
        assert_eq!(
            fs::read_to_string(extracted.root.join("lib/util.ts")).unwrap(),
            "export {}"
        );
    }

    #[test]
    fn strips_one_common_top_level_directory() {
        let bytes = targz(|b| {
            raw(b, "package/", tar::EntryType::Directory, "", b"");
            file(b, "package/index.ts", b"x");
            file(b, "package/package.json", b"{}");
        });
        let (temp, result) = run(&bytes, &Limits::default());
        let extracted = result.unwrap();
        assert_eq!(extracted.root, temp.path().join("out/package"));
        assert!(extracted.root.join("index.ts").is_file());
    }

    #[test]
    fn strips_the_top_level_directory_of_a_zip_without_directory_entries() {
        let bytes = zip(|z| {
            z.start_file("my-app/index.ts", zip_options()).unwrap();
            z.write_all(b"x").unwrap();
            z.start_file("my-app/lib/a.ts", zip_options()).unwrap();
            z.write_all(b"y").unwrap();
            z.start_file("__MACOSX/my-app/._index.ts", zip_options())
                .unwrap();
            z.write_all(b"junk").unwrap();
        });
        let (temp, result) = run(&bytes, &Limits::default());
        let extracted = result.unwrap();
        assert_eq!(extracted.root, temp.path().join("out/my-app"));
        assert_eq!(extracted.files, 2);
        assert!(!temp.path().join("out/__MACOSX").exists());
    }

    #[test]
    fn keeps_the_root_when_several_entries_sit_at_the_top() {
        let bytes = targz(|b| {
            file(b, "./src/index.ts", b"x");
            file(b, "./package.json", b"{}");
        });
        let (temp, result) = run(&bytes, &Limits::default());
        assert_eq!(result.unwrap().root, temp.path().join("out"));
    }

    #[test]
    fn keeps_the_root_when_the_only_entry_is_a_file() {
        let bytes = targz(|b| file(b, "index.ts", b"x"));
        let (temp, result) = run(&bytes, &Limits::default());
        assert_eq!(result.unwrap().root, temp.path().join("out"));
    }

    #[test]
    fn refuses_parent_components() {
        let error = refused(&targz(|b| file(b, "../evil", b"x")), &Limits::default());
        assert!(
            matches!(&error, ArchiveError::UnsafePath { entry, .. } if entry == "../evil"),
            "{error}"
        );
        let error = refused(
            &targz(|b| file(b, "app/../../evil", b"x")),
            &Limits::default(),
        );
        assert!(matches!(error, ArchiveError::UnsafePath { .. }), "{error}");
    }

    #[test]
    fn refuses_parent_components_in_zip_names_with_backslashes() {
        let bytes = zip(|z| {
            z.start_file("..\\evil", zip_options()).unwrap();
            z.write_all(b"x").unwrap();
        });
        assert!(matches!(
            refused(&bytes, &Limits::default()),
            ArchiveError::UnsafePath { .. }
        ));
    }

    #[test]
    fn refuses_absolute_paths() {
        let error = refused(&targz(|b| file(b, "/tmp/evil", b"x")), &Limits::default());
        assert!(
            matches!(&error, ArchiveError::UnsafePath { reason, .. } if *reason == "absolute path"),
            "{error}"
        );
        let bytes = zip(|z| {
            z.start_file("/etc/evil", zip_options()).unwrap();
            z.write_all(b"x").unwrap();
        });
        assert!(matches!(
            refused(&bytes, &Limits::default()),
            ArchiveError::UnsafePath { .. }
        ));
    }

    #[test]
    fn refuses_symlinks_even_inside_the_tree() {
        for target in ["/etc/passwd", "../../outside", "index.ts"] {
            let bytes = targz(|b| {
                file(b, "index.ts", b"x");
                raw(b, "link", tar::EntryType::Symlink, target, b"");
            });
            let error = refused(&bytes, &Limits::default());
            assert!(
                matches!(&error, ArchiveError::Link { entry, .. } if entry == "link"),
                "{error}"
            );
        }
    }

    #[test]
    fn refuses_zip_symlinks() {
        let bytes = zip(|z| {
            z.add_symlink("link", "../../etc/passwd", zip_options())
                .unwrap();
        });
        assert!(matches!(
            refused(&bytes, &Limits::default()),
            ArchiveError::Link { .. }
        ));
    }

    #[test]
    fn refuses_hard_links() {
        let bytes = targz(|b| raw(b, "link", tar::EntryType::Link, "/etc/passwd", b""));
        let error = refused(&bytes, &Limits::default());
        assert!(
            matches!(&error, ArchiveError::Link { kind, .. } if *kind == "hard link"),
            "{error}"
        );
    }

    #[test]
    fn refuses_devices_and_fifos() {
        for kind in [
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::Fifo,
        ] {
            let bytes = targz(|b| raw(b, "dev", kind, "", b""));
            let error = refused(&bytes, &Limits::default());
            assert!(matches!(error, ArchiveError::Unsupported { .. }), "{error}");
        }
    }

    #[test]
    fn refuses_too_many_entries() {
        let bytes = targz(|b| {
            for index in 0..21 {
                file(b, &format!("f{index}"), b"");
            }
        });
        assert!(matches!(
            refused(&bytes, &small()),
            ArchiveError::TooManyEntries { limit: 20 }
        ));
        let bytes = zip(|z| {
            for index in 0..21 {
                z.start_file(format!("f{index}"), zip_options()).unwrap();
            }
        });
        assert!(matches!(
            refused(&bytes, &small()),
            ArchiveError::TooManyEntries { limit: 20 }
        ));
    }

    #[test]
    fn refuses_a_file_declared_larger_than_the_limit() {
        let bytes = targz(|b| file(b, "big", &vec![7u8; 64 * 1024 + 1]));
        let error = refused(&bytes, &small());
        assert!(
            matches!(&error, ArchiveError::FileTooLarge { entry, .. } if entry == "big"),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_zip_file_larger_than_the_limit() {
        let bytes = zip(|z| {
            z.start_file("big", zip_options()).unwrap();
            z.write_all(&vec![7u8; 64 * 1024 + 1]).unwrap();
        });
        let error = refused(&bytes, &small());
        assert!(
            matches!(error, ArchiveError::FileTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn counts_the_bytes_written_not_the_size_an_entry_declares() {
        let temp = tempfile::tempdir().unwrap();
        let limits = small();
        let mut sink = Sink {
            dest: temp.path(),
            limits: &limits,
            compressed: 1 << 30,
            entries: 0,
            files: 0,
            bytes: 0,
            stream_exceeded: Rc::new(Cell::new(false)),
        };
        let mut data = io::repeat(1).take(limits.max_file_bytes + 1);
        let error = sink.file("liar", 10, &mut data).unwrap_err();
        assert!(
            matches!(error, ArchiveError::FileTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn refuses_archives_expanding_beyond_the_total_limit() {
        let limits = Limits {
            max_ratio: u64::MAX,
            ..small()
        };
        let bytes = targz(|b| {
            for index in 0..5 {
                let data: Vec<u8> = (0..60 * 1024u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                file(b, &format!("f{index}"), &data);
            }
        });
        let error = refused(&bytes, &limits);
        assert!(
            matches!(&error, ArchiveError::TooLarge { entry, .. } if entry == "f4"),
            "{error}"
        );
    }

    #[test]
    fn refuses_archives_with_a_bomb_like_compression_ratio() {
        let bytes = targz(|b| {
            for index in 0..3 {
                file(b, &format!("zeros{index}"), &vec![0u8; 60 * 1024]);
            }
        });
        let error = refused(&bytes, &small());
        assert!(
            matches!(error, ArchiveError::RatioTooHigh { .. }),
            "{error}"
        );
    }

    #[test]
    fn refuses_non_archives_and_corrupt_archives() {
        assert!(matches!(
            refused(b"just some text", &Limits::default()),
            ArchiveError::NotAnArchive
        ));
        let mut bytes = targz(|b| file(b, "index.ts", &vec![1u8; 10_000]));
        bytes.truncate(bytes.len() / 2);
        let error = refused(&bytes, &Limits::default());
        assert!(matches!(error, ArchiveError::Corrupt(_)), "{error}");
    }

    #[test]
    fn refuses_an_archive_without_files() {
        let bytes = targz(|b| raw(b, "empty/", tar::EntryType::Directory, "", b""));
        assert!(matches!(
            refused(&bytes, &Limits::default()),
            ArchiveError::Empty
        ));
    }

    #[test]
    fn refuses_a_file_where_a_directory_was() {
        let bytes = targz(|b| {
            file(b, "lib/a.ts", b"x");
            file(b, "lib", b"y");
        });
        assert!(matches!(
            refused(&bytes, &Limits::default()),
            ArchiveError::Clash { .. }
        ));
    }

    #[test]
    fn nothing_stays_on_disk_after_a_late_rejection() {
        let bytes = targz(|b| {
            file(b, "index.ts", b"x");
            file(b, "lib/a.ts", b"y");
            file(b, "../evil", b"z");
        });
        let (temp, result) = run(&bytes, &Limits::default());
        assert!(result.is_err());
        let left: Vec<_> = fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("upload")]);
    }

    #[test]
    fn pack_then_extract_round_trips_and_keeps_links_unfollowed() {
        let temp = tempfile::tempdir().unwrap();
        let release = temp.path().join("app@1.0.0");
        fs::create_dir_all(release.join("lib")).unwrap();
        fs::write(release.join("index.ts"), "export default {}").unwrap();
        fs::write(release.join("lib/a.ts"), "a").unwrap();
        fs::write(temp.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(temp.path().join("secret"), release.join("escape")).unwrap();
        let bytes = pack(&release, Vec::new()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "package/escape" {
                assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
            }
            names.push(name);
        }
        assert_eq!(
            names,
            [
                "package",
                "package/escape",
                "package/index.ts",
                "package/lib",
                "package/lib/a.ts"
            ]
        );
        fs::remove_file(release.join("escape")).unwrap();
        let bytes = pack(&release, Vec::new()).unwrap();
        let (_temp, result) = run(&bytes, &Limits::default());
        let extracted = result.unwrap();
        assert_eq!(extracted.root.file_name().unwrap(), "package");
        assert_eq!(
            fs::read_to_string(extracted.root.join("lib/a.ts")).unwrap(),
            "a"
        );
    }
}

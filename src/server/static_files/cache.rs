//! What the static file server remembers between requests: where a request path
//! led, and the bytes of small files and of text gzipped on the fly. A repeated
//! asset then costs one `stat` instead of a walk of its path, an open and a read,
//! and a large script is compressed once instead of on every request.
//!
//! How stale an answer can be is bounded:
//! - a located path is trusted for [`LOCATE_TTL`], so a retargeted symlink, a new
//!   `index.html` or a new precompressed sibling shows within that time (a path
//!   that led nowhere, or to the SPA fallback, is never remembered);
//! - content is checked against the file's device, inode, size and times on every
//!   request, and a file changed within [`RACY_WINDOW`] is not kept at all, since two
//!   writes inside one timestamp tick would look the same.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::negotiate::Coding;
use crate::sync::lock;

/// How long a request path's resolution is reused without walking it again.
const LOCATE_TTL: Duration = Duration::from_secs(2);
/// Files whose last change is this recent are read, never kept.
const RACY_WINDOW: Duration = Duration::from_secs(2);
/// Remembered resolutions at most; past it the table starts over.
const MAX_LOCATED: usize = 4096;
/// Bytes of file content and gzipped text kept at most, over all apps.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Files up to this size are read whole (and may be kept); larger ones are streamed.
const READ_AT_ONCE: u64 = 64 * 1024;

/// The process's cache: static apps are served by every connection's task.
pub(super) fn files() -> &'static FileCache {
    static CACHE: LazyLock<FileCache> = LazyLock::new(FileCache::default);
    &CACHE
}

/// Where a request path led: an existing file under the app dir, and its
/// precompressed siblings (`app.js.br`, `app.js.gz`) that were there then.
pub(super) struct Located {
    pub file: PathBuf,
    pub siblings: Vec<(Coding, PathBuf)>,
}

/// What identifies one version of a file's content.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether the file changed so recently that a second change could keep this stamp.
    fn is_racy(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let last = self.modified.0.max(self.changed.0);
        let window = RACY_WINDOW.as_secs() as i64;
        i64::try_from(now).map_or(true, |now| now - last <= window)
    }
}

/// An opened file: its metadata, and its bytes when small, else the open file.
pub(super) struct Opened {
    pub metadata: std::fs::Metadata,
    pub content: Content,
}

impl Opened {
    /// The version of the file that was opened.
    pub(super) fn stamp(&self) -> Stamp {
        Stamp::of(&self.metadata)
    }
}

/// A file's content as opened.
pub(super) enum Content {
    /// The whole file, read now or earlier.
    Memory(Bytes),
    /// A file over [`READ_AT_ONCE`] (or not a regular file), to be streamed.
    File(std::fs::File),
}

/// Resolutions and file bytes kept between requests; see the module's text.
#[derive(Default)]
pub(super) struct FileCache {
    /// App dir -> request path -> where it led, and when that was found.
    located: Mutex<HashMap<PathBuf, PathsOfApp>>,
    contents: Mutex<Contents>,
}

/// Request path -> where it led, and when that was found.
type PathsOfApp = HashMap<String, (Arc<Located>, Instant)>;

#[derive(Default)]
struct Contents {
    entries: HashMap<PathBuf, Entry>,
    bytes: usize,
    /// Bumped on every use, to find the least recently used entries.
    clock: u64,
}

struct Entry {
    stamp: Stamp,
    raw: Option<Bytes>,
    gzip: Option<Bytes>,
    used: u64,
}

impl Contents {
    /// The next value of the use clock.
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl Entry {
    fn size(&self) -> usize {
        self.raw.as_ref().map_or(0, Bytes::len) + self.gzip.as_ref().map_or(0, Bytes::len)
    }
}

impl FileCache {
    /// The resolution of `path` under `root`, if one was made within [`LOCATE_TTL`].
    pub(super) fn located(&self, root: &Path, path: &str) -> Option<Arc<Located>> {
        let located = lock(&self.located);
        let (found, at) = located.get(root)?.get(path)?;
        (at.elapsed() < LOCATE_TTL).then(|| found.clone())
    }

    /// Remembers that `path` under `root` led to an existing file.
    pub(super) fn remember_located(&self, root: &Path, path: &str, found: Arc<Located>) {
        let mut located = lock(&self.located);
        let count: usize = located.values().map(HashMap::len).sum();
        if count >= MAX_LOCATED {
            located.clear();
        }
        located
            .entry(root.to_path_buf())
            .or_default()
            .insert(path.to_owned(), (found, Instant::now()));
    }

    /// Forgets where `path` under `root` led (its file is gone or changed kind).
    pub(super) fn forget_located(&self, root: &Path, path: &str) {
        if let Some(paths) = lock(&self.located).get_mut(root) {
            paths.remove(path);
        }
    }

    /// Opens `path`: from memory when the kept bytes are still the file's, else from
    /// the disk, keeping a small file's bytes for next time.
    pub(super) fn open(&self, path: &Path) -> io::Result<Opened> {
        if let Some(opened) = self.open_kept(path)? {
            return Ok(opened);
        }
        let file = std::fs::File::open(path)?;
        let metadata = file.metadata()?;
        let stamp = Stamp::of(&metadata);
        if !metadata.is_file() || metadata.len() > READ_AT_ONCE {
            return Ok(Opened {
                metadata,
                content: Content::File(file),
            });
        }
        let bytes = Bytes::from(read_whole(file, metadata.len())?);
        if bytes.len() as u64 == metadata.len() && !stamp.is_racy() {
            self.keep(path, stamp, |entry| entry.raw = Some(bytes.clone()));
        }
        Ok(Opened {
            metadata,
            content: Content::Memory(bytes),
        })
    }

    /// The kept bytes of `path` if a `stat` says they are still its content.
    fn open_kept(&self, path: &Path) -> io::Result<Option<Opened>> {
        let kept = {
            let mut contents = lock(&self.contents);
            let clock = contents.tick();
            contents.entries.get_mut(path).and_then(|entry| {
                entry.used = clock;
                Some((entry.stamp, entry.raw.clone()?))
            })
        };
        let Some((stamp, raw)) = kept else {
            return Ok(None);
        };
        let metadata = std::fs::metadata(path)?;
        if Stamp::of(&metadata) != stamp {
            self.drop_entry(path);
            return Ok(None);
        }
        Ok(Some(Opened {
            metadata,
            content: Content::Memory(raw),
        }))
    }

    /// The gzipped bytes of `path` made earlier from the content `stamp` names.
    pub(super) fn gzipped(&self, path: &Path, stamp: Stamp) -> Option<Bytes> {
        let mut contents = lock(&self.contents);
        let clock = contents.tick();
        let entry = contents.entries.get_mut(path)?;
        if entry.stamp != stamp {
            return None;
        }
        entry.used = clock;
        entry.gzip.clone()
    }

    /// Keeps the gzipped bytes of the content `stamp` names.
    pub(super) fn remember_gzipped(&self, path: &Path, stamp: Stamp, gzip: Bytes) {
        if !stamp.is_racy() {
            self.keep(path, stamp, |entry| entry.gzip = Some(gzip));
        }
    }

    /// Updates (or starts) the entry of `path` for the content `stamp` names, then
    /// evicts the least recently used entries while over [`MAX_BYTES`].
    fn keep(&self, path: &Path, stamp: Stamp, update: impl FnOnce(&mut Entry)) {
        let mut contents = lock(&self.contents);
        let clock = contents.tick();
        let fresh = Entry {
            stamp,
            raw: None,
            gzip: None,
            used: clock,
        };
        let entry = contents.entries.entry(path.to_path_buf()).or_insert(fresh);
        let before = entry.size();
        if entry.stamp != stamp {
            entry.stamp = stamp;
            entry.raw = None;
            entry.gzip = None;
        }
        update(entry);
        entry.used = clock;
        let after = entry.size();
        contents.bytes = contents.bytes - before + after;
        while contents.bytes > MAX_BYTES {
            let Some(oldest) = contents
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(path, _)| path.clone())
            else {
                break;
            };
            if let Some(evicted) = contents.entries.remove(&oldest) {
                contents.bytes -= evicted.size();
            }
        }
    }

    fn drop_entry(&self, path: &Path) {
        let mut contents = lock(&self.contents);
        if let Some(entry) = contents.entries.remove(path) {
            contents.bytes -= entry.size();
        }
    }
}

/// Reads up to `len` bytes of an open file.
pub(super) fn read_whole(file: std::fs::File, len: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

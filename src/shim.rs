//! The JavaScript shim every child runs, embedded at build time and written to the
//! runtime directory at start.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/shim_files.rs"));

/// Writes the shim into `runtime_dir/shim` and returns the path of its entry file.
pub fn install(runtime_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = runtime_dir.join("shim");
    std::fs::create_dir_all(&dir)?;
    for (name, contents) in SHIM_FILES {
        std::fs::write(dir.join(name), contents)?;
    }
    let entry = dir.join("main.js");
    if !entry.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the embedded shim has no main.js",
        ));
    }
    Ok(entry)
}

//! Embeds every `.js` file of `shim/src` so the binary carries its own shim.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("shim/src");
    println!("cargo:rerun-if-changed=shim/src");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
                .filter(|name| name.ends_with(".js"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut code = String::from(
        "/// The shim's files: (name, contents).\npub const SHIM_FILES: &[(&str, &str)] = &[\n",
    );
    for name in &names {
        println!("cargo:rerun-if-changed=shim/src/{name}");
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/shim/src/{name}\"))),"
        );
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_owned());
    if let Err(error) = std::fs::write(Path::new(&out).join("shim_files.rs"), code) {
        panic!("cannot write the embedded shim list: {error}");
    }
}

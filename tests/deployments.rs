//! `/_/deployments` against the real binary: listing, uploads while serving,
//! downloads, deletions, and archives that must be refused without a trace.

mod common;

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Apps, Supervisor};
use serde_json::Value;

const BOUNDARY: &str = "buntime-test-boundary-5f0c9e2d7a41b836";

/// An app whose `/` answers `text`.
fn index_ts(text: &str) -> String {
    format!("export default {{ fetch() {{ return new Response({text:?}); }} }};\n")
}

fn package_json(name: &str, version: &str) -> String {
    format!("{{\"name\":{name:?},\"version\":{version:?}}}")
}

/// A tar.gz of regular files, as `npm pack` lays it out when `wrap` is set.
fn targz(files: &[(&str, &[u8])], wrap: bool) -> Vec<u8> {
    raw_targz(|builder| {
        for (name, data) in files {
            let name = if wrap {
                format!("package/{name}")
            } else {
                name.to_string()
            };
            raw_entry(builder, &name, tar::EntryType::Regular, "", data);
        }
    })
}

/// A tar.gz built entry by entry with [`raw_entry`].
fn raw_targz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&tar).unwrap();
    encoder.finish().unwrap()
}

/// One tar entry with its name and link written verbatim (the tar builder would
/// refuse the unsafe ones these tests need).
fn raw_entry(
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

fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// `hello@2.0.0`, answering `Hello v2`, wrapped in `package/`.
fn hello_v2() -> Vec<u8> {
    targz(
        &[
            ("package.json", package_json("hello", "2.0.0").as_bytes()),
            ("index.ts", index_ts("Hello v2").as_bytes()),
        ],
        true,
    )
}

/// A multipart/form-data body: the archive as `file`, then text fields.
fn form(archive: &[u8], fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    write!(
        body,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"app.tgz\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(archive);
    body.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    body
}

/// POSTs an archive with fields; status and JSON body.
async fn upload(
    supervisor: &Supervisor,
    query: &str,
    archive: &[u8],
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let response = supervisor
        .client
        .post(supervisor.url(&format!("/_/deployments{query}")))
        .header("origin", &supervisor.base)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(archive, fields))
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

async fn delete(supervisor: &Supervisor, path: &str) -> (u16, Value) {
    let response = supervisor
        .client
        .delete(supervisor.url(path))
        .header("origin", &supervisor.base)
        .send()
        .await
        .expect("delete");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// Every path under `dir`, relative and sorted, dot entries included.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Uploads `archive`, expects a 400 with `code` whose message mentions `mentions`,
/// and checks the app dir is exactly as before.
async fn assert_refused(archive: &[u8], fields: &[(&str, &str)], code: &str, mentions: &str) {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let before = tree(apps.path());
    let (status, body) = upload(&supervisor, "", archive, fields).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{message:?} lacks {mentions:?}");
    assert_eq!(tree(apps.path()), before, "the app dir changed");
    assert_eq!(supervisor.get("/hello/").await.1, "Hello from hello@1.0.0");
}

#[tokio::test]
async fn lists_every_release_with_its_files_and_bytes() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/_/deployments").await;
    assert_eq!(status, 200, "{body}");
    let listing: Value = serde_json::from_str(&body).unwrap();
    let hello = listing["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|app| app["name"] == "hello")
        .expect("hello listed");
    let versions = hello["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let fixture = apps.path().join("hello@1.0.0");
    let bytes: u64 = std::fs::read_dir(&fixture)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(versions[0]["version"], "1.0.0");
    assert_eq!(versions[0]["dir"], fixture.display().to_string());
    assert_eq!(versions[0]["files"], 2);
    assert_eq!(versions[0]["bytes"], bytes);
    assert!(listing["apps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|app| app["name"] == "echo"));
}

#[tokio::test]
async fn upload_under_load_serves_the_new_version_with_no_failed_request() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Arc::new(Supervisor::start(&apps, &[]));
    assert_eq!(supervisor.get("/hello/").await.1, "Hello from hello@1.0.0");
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let new_answers = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (supervisor, done, sent, new_answers) = (
            supervisor.clone(),
            done.clone(),
            sent.clone(),
            new_answers.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !(done.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) >= 200) {
                sent.fetch_add(1, Ordering::Relaxed);
                let (status, body) = supervisor.get("/hello/").await;
                match (status, body.as_str()) {
                    (200, "Hello from hello@1.0.0") => {}
                    (200, "Hello v2") => {
                        new_answers.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => failures.push((status, body)),
                }
            }
            failures
        }));
    }
    while sent.load(Ordering::Relaxed) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = upload(&supervisor, "", &hello_v2(), &[]).await;
    assert_eq!(status, 201, "{body}");
    let dir = apps.path().join("hello@2.0.0");
    assert_eq!(body["name"], "hello");
    assert_eq!(body["version"], "2.0.0");
    assert_eq!(body["dir"], dir.display().to_string());
    assert_eq!(body["files"], 2);
    assert!(dir.join("index.ts").is_file() && dir.join("package.json").is_file());
    let sent_before_switch = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(total >= 200, "only {total} requests");
    assert!(
        total > sent_before_switch,
        "no request ran after the upload"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        new_answers.load(Ordering::Relaxed) > 0,
        "the load never reached the new version"
    );
    assert_eq!(
        supervisor.get("/hello/").await,
        (200, "Hello v2".to_owned())
    );
    assert!(
        common::process_alive(supervisor.pid_of_supervisor()),
        "the supervisor restarted"
    );
    assert!(supervisor.logged(&["deployment written", "hello", "2.0.0", "deploy"]));
}

#[tokio::test]
async fn uploads_a_zip_with_the_app_at_its_root() {
    let apps = Apps::with(&[]);
    let supervisor = Supervisor::start(&apps, &[]);
    let archive = zip(&[
        ("package.json", package_json("zipped", "1.0.0").as_bytes()),
        ("index.ts", index_ts("Hello zip").as_bytes()),
        ("lib/util.ts", b"export const x = 1;\n"),
    ]);
    let (status, body) = upload(&supervisor, "", &archive, &[]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["files"], 3);
    assert!(apps.path().join("zipped@1.0.0/lib/util.ts").is_file());
    assert_eq!(
        supervisor.get("/zipped/").await,
        (200, "Hello zip".to_owned())
    );
}

#[tokio::test]
async fn form_fields_name_and_version_win_over_package_json() {
    let apps = Apps::with(&[]);
    let supervisor = Supervisor::start(&apps, &[]);
    let archive = targz(
        &[
            ("package.json", package_json("ignored", "9.9.9").as_bytes()),
            ("index.ts", index_ts("renamed").as_bytes()),
        ],
        false,
    );
    let fields = [("name", "renamed"), ("version", "3.1.0")];
    let (status, body) = upload(&supervisor, "", &archive, &fields).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["name"], &body["version"]),
        (&"renamed".into(), &"3.1.0".into())
    );
    assert!(apps.path().join("renamed@3.1.0/index.ts").is_file());
    assert!(!apps.path().join("ignored@9.9.9").exists());
    assert_eq!(
        supervisor.get("/renamed@3.1/").await,
        (200, "renamed".to_owned())
    );
}

#[tokio::test]
async fn scoped_names_land_in_their_scope_dir() {
    let apps = Apps::with(&[]);
    let supervisor = Supervisor::start(&apps, &[]);
    let archive = targz(&[("index.ts", index_ts("scoped tool").as_bytes())], true);
    let fields = [("name", "@team/tool"), ("version", "1.0.0")];
    let (status, body) = upload(&supervisor, "", &archive, &fields).await;
    assert_eq!(status, 201, "{body}");
    assert!(apps.path().join("@team/tool@1.0.0/index.ts").is_file());
    assert_eq!(
        supervisor.get("/@team/tool/").await,
        (200, "scoped tool".to_owned())
    );
    let download = supervisor
        .client
        .get(supervisor.url("/_/deployments/@team/tool/1.0.0/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
}

#[tokio::test]
async fn uploading_an_existing_version_answers_409_and_changes_nothing() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let before = tree(apps.path());
    let archive = targz(&[("index.ts", index_ts("impostor").as_bytes())], false);
    let fields = [("name", "hello"), ("version", "1.0.0")];
    let (status, body) = upload(&supervisor, "", &archive, &fields).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "VERSION_EXISTS");
    assert_eq!(tree(apps.path()), before);
    assert_eq!(supervisor.get("/hello/").await.1, "Hello from hello@1.0.0");
}

#[tokio::test]
async fn overwrite_replaces_a_running_release() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(supervisor.get("/hello/").await.1, "Hello from hello@1.0.0");
    let archive = targz(&[("index.ts", index_ts("Hello again").as_bytes())], false);
    let fields = [("name", "hello"), ("version", "1.0.0")];
    let (status, body) = upload(&supervisor, "?overwrite=true", &archive, &fields).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        supervisor.get("/hello/").await,
        (200, "Hello again".to_owned())
    );
    let dir = apps.path().join("hello@1.0.0");
    assert!(!dir.join("worker.jsonc").exists(), "old files kept");
    let leftovers: Vec<String> = tree(apps.path())
        .into_iter()
        .filter(|path| path.starts_with('.') && !path.starts_with(".evidence"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(supervisor.logged(&["deployment written", "hello", "redeploy"]));
}

#[tokio::test]
async fn download_round_trips_the_release_files() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/_/deployments/hello/1.0.0/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    let bytes = response.bytes().await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.push((name, data));
        }
    }
    files.sort();
    let fixture = apps.path().join("hello@1.0.0");
    let expected: Vec<(String, Vec<u8>)> = ["index.ts", "worker.jsonc"]
        .iter()
        .map(|name| {
            (
                format!("package/{name}"),
                std::fs::read(fixture.join(name)).unwrap(),
            )
        })
        .collect();
    assert_eq!(files, expected);

    // The download deploys again as it is.
    let fields = [("name", "copy"), ("version", "1.0.0")];
    let (status, body) = upload(&supervisor, "", &bytes, &fields).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        std::fs::read(apps.path().join("copy@1.0.0/index.ts")).unwrap(),
        std::fs::read(fixture.join("index.ts")).unwrap()
    );
}

#[tokio::test]
async fn download_of_a_missing_release_answers_404_json() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/_/deployments/hello/9.9.9/download").await;
    assert_eq!(status, 404, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "RELEASE_NOT_FOUND");
}

#[tokio::test]
async fn deleting_a_version_makes_it_unroutable() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = upload(&supervisor, "", &hello_v2(), &[]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        supervisor.get("/hello@2/").await,
        (200, "Hello v2".to_owned())
    );
    let (status, body) = delete(&supervisor, "/_/deployments/hello/2.0.0").await;
    assert_eq!(status, 200, "{body}");
    let dir = apps.path().join("hello@2.0.0");
    assert_eq!(
        body["deleted"],
        serde_json::json!([dir.display().to_string()])
    );
    assert!(!dir.exists());
    assert_eq!(supervisor.get("/hello@2/").await.0, 404);
    assert_eq!(supervisor.get("/hello/").await.1, "Hello from hello@1.0.0");
    assert!(supervisor.logged(&["deployment deleted", "hello", "2.0.0"]));
    let (status, _) = delete(&supervisor, "/_/deployments/hello/2.0.0").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deleting_an_app_removes_every_release_in_every_layout() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let nested = apps.path().join("hello/3.0.0");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("index.ts"), index_ts("nested")).unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(supervisor.get("/hello/").await.1, "nested");
    let (status, body) = delete(&supervisor, "/_/deployments/hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(supervisor.get("/hello/").await.0, 404);
    let left: Vec<String> = tree(apps.path())
        .into_iter()
        .filter(|path| path.contains("hello"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(apps.path().join("echo@1.0.0").is_dir());
    assert_eq!(delete(&supervisor, "/_/deployments/hello").await.0, 404);
}

#[tokio::test]
async fn delete_refuses_names_that_would_escape_the_app_dirs() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let before = tree(apps.path());
    let (status, body) = delete(&supervisor, "/_/deployments/..%2F..%2Ftmp").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_NAME");
    let (status, body) = delete(&supervisor, "/_/deployments/hello/..%2F..").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(tree(apps.path()), before);
}

#[tokio::test]
async fn refuses_an_entry_with_a_parent_component() {
    let archive = targz(
        &[("index.ts", index_ts("x").as_bytes()), ("../evil.ts", b"x")],
        false,
    );
    let fields = [("name", "evil"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "UNSAFE_ARCHIVE_ENTRY", "../evil.ts").await;
}

#[tokio::test]
async fn refuses_an_entry_with_an_absolute_path() {
    let archive = targz(&[("/tmp/evil.ts", b"x")], false);
    let fields = [("name", "evil"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "UNSAFE_ARCHIVE_ENTRY", "/tmp/evil.ts").await;
}

#[tokio::test]
async fn refuses_a_symlink_pointing_out() {
    let archive = raw_targz(|builder| {
        raw_entry(builder, "index.ts", tar::EntryType::Regular, "", b"x");
        raw_entry(
            builder,
            "passwd",
            tar::EntryType::Symlink,
            "../../../etc/passwd",
            b"",
        );
    });
    let fields = [("name", "evil"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "UNSAFE_ARCHIVE_ENTRY", "passwd").await;
}

#[tokio::test]
async fn refuses_a_hardlink_pointing_out() {
    let archive = raw_targz(|builder| {
        raw_entry(builder, "index.ts", tar::EntryType::Regular, "", b"x");
        raw_entry(builder, "shadow", tar::EntryType::Link, "/etc/shadow", b"");
    });
    let fields = [("name", "evil"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "UNSAFE_ARCHIVE_ENTRY", "shadow").await;
}

#[tokio::test]
async fn refuses_ten_thousand_empty_files() {
    let archive = raw_targz(|builder| {
        for index in 0..10_000 {
            raw_entry(
                builder,
                &format!("f{index}"),
                tar::EntryType::Regular,
                "",
                b"",
            );
        }
    });
    let fields = [("name", "many"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "ARCHIVE_TOO_LARGE", "entries").await;
}

#[tokio::test]
async fn refuses_a_size_bomb() {
    // 300 MB of zeros, compressed while it is generated: about 1.4 MB on the wire.
    let size: u64 = 300 * 1000 * 1000;
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros.bin").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append(&header, std::io::repeat(0).take(size))
        .unwrap();
    let archive = builder.into_inner().unwrap().finish().unwrap();
    assert!(archive.len() < 5 * 1024 * 1024, "{}", archive.len());
    let fields = [("name", "bomb"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "ARCHIVE_TOO_LARGE", "zeros.bin").await;
}

#[tokio::test]
async fn refuses_an_upload_that_is_not_an_archive() {
    let fields = [("name", "text"), ("version", "1.0.0")];
    assert_refused(
        b"export default {}; // not an archive at all",
        &fields,
        "NOT_AN_ARCHIVE",
        "archive",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_invalid_app_name() {
    let archive = targz(&[("index.ts", index_ts("x").as_bytes())], false);
    let fields = [("name", "../evil"), ("version", "1.0.0")];
    assert_refused(&archive, &fields, "INVALID_NAME", "../evil").await;
}

#[tokio::test]
async fn curl_uploads_downloads_and_deletes_a_release() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("hello-2.0.0.tgz");
    std::fs::write(&archive, hello_v2()).unwrap();
    let curl = |args: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "-H", &format!("Origin: {}", supervisor.base)])
            .args(args)
            .output()
            .expect("curl is installed");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, body) = curl(&[
        "-w",
        "\n%{http_code}",
        "-F",
        &format!("file=@{}", archive.display()),
        &supervisor.url("/_/deployments"),
    ]);
    assert!(ok && body.ends_with("\n201"), "{body}");
    assert_eq!(supervisor.get("/hello/").await, (200, "Hello v2".into()));

    let downloaded = work.path().join("download.tgz");
    let (ok, _) = curl(&[
        "-o",
        &downloaded.display().to_string(),
        &supervisor.url("/_/deployments/hello/2.0.0/download"),
    ]);
    assert!(ok);
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&downloaded)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("index.ts"));

    let (ok, body) = curl(&[
        "-X",
        "DELETE",
        "-w",
        "\n%{http_code}",
        &supervisor.url("/_/deployments/hello/2.0.0"),
    ]);
    assert!(ok && body.ends_with("\n200"), "{body}");
    let mut back_to_v1 = false;
    for _ in 0..30 {
        if supervisor.get("/hello/").await == (200, "Hello from hello@1.0.0".into()) {
            back_to_v1 = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back_to_v1);
}

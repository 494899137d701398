//! Static apps (an HTML entrypoint) served from disk by the supervisor itself: content
//! types, validators, ranges, compression, the SPA fallback, path safety and
//! `<base href>` injection, seen by a client over real sockets.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::{repo, Apps, Supervisor};
use reqwest::header::HeaderMap;
use reqwest::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "spa@1.0.0";
/// Content of a file placed outside the app dir; no response may ever contain it.
const SECRET: &str = "OUTSIDE-THE-APP-DIR-SECRET";

fn start() -> (Apps, Supervisor) {
    let apps = Apps::with(&[APP]);
    let supervisor = Supervisor::start(&apps, &[]);
    (apps, supervisor)
}

fn fixture(path: &str) -> Vec<u8> {
    let file = repo().join("fixtures/apps").join(APP).join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).unwrap()
}

/// A file of the app's copy in the test's apps dir.
fn fixture_path_in(apps: &Apps, path: &str) -> PathBuf {
    apps.path().join(APP).join(path)
}

/// Writes `SECRET` to `secret.txt` in the apps dir, next to (outside) the app.
fn plant_secret(apps: &Apps) -> PathBuf {
    let secret = apps.path().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    secret
}

async fn get(supervisor: &Supervisor, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = supervisor.client.get(supervisor.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// What came back from a raw request.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends `GET {target}` exactly as written (no client-side path normalisation) and
/// reads the whole answer.
async fn raw_get(supervisor: &Supervisor, target: &str) -> RawResponse {
    let address = supervisor.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    RawResponse {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
    }
}

/// Asserts a raw request is refused with 400 or 404 and leaks nothing from outside.
async fn assert_refused(supervisor: &Supervisor, target: &str) {
    let response = raw_get(supervisor, target).await;
    let body = String::from_utf8_lossy(&response.body);
    assert!(
        response.status == 400 || response.status == 404,
        "{target}: {} {body}",
        response.status
    );
    assert!(!body.contains(SECRET), "{target} leaked: {body}");
    assert!(!response.head.contains(SECRET), "{target} leaked in head");
}

// Content types

#[tokio::test]
async fn content_types_follow_the_file_extension() {
    let (_apps, supervisor) = start();
    for (path, expected) in [
        ("/spa/", "text/html; charset=utf-8"),
        ("/spa/docs/guide.html", "text/html; charset=utf-8"),
        ("/spa/assets/style.css", "text/css; charset=utf-8"),
        ("/spa/assets/app.js", "text/javascript; charset=utf-8"),
        ("/spa/assets/logo.png", "image/png"),
        ("/spa/data.json", "application/json; charset=utf-8"),
        ("/spa/assets/tiny.txt", "text/plain; charset=utf-8"),
    ] {
        let response = get(&supervisor, path, &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(response.headers(), "content-type"),
            expected,
            "{path}"
        );
        assert_eq!(
            header(response.headers(), "x-content-type-options"),
            "nosniff"
        );
    }
}

#[tokio::test]
async fn files_are_served_byte_for_byte_with_their_length() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa/assets/logo.png", &[]).await;
    assert_eq!(response.status(), 200);
    let expected = fixture("assets/logo.png");
    assert_eq!(
        header(response.headers(), "content-length"),
        expected.len().to_string()
    );
    assert!(response.headers().get("x-request-id").is_some());
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        expected.as_slice()
    );
}

#[tokio::test]
async fn percent_encoded_file_names_are_decoded() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa/assets/app%2Ejs", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        fixture_text("assets/app.js")
    );
}

#[tokio::test]
async fn html_is_never_cached_without_revalidation_and_assets_revalidate() {
    let (_apps, supervisor) = start();
    let html = get(&supervisor, "/spa/", &[]).await;
    assert_eq!(header(html.headers(), "cache-control"), "no-cache");
    let asset = get(&supervisor, "/spa/assets/logo.png", &[]).await;
    assert_eq!(
        header(asset.headers(), "cache-control"),
        "public, max-age=0, must-revalidate"
    );
}

// Validators

#[tokio::test]
async fn files_carry_a_quoted_etag_last_modified_and_accept_ranges() {
    let (apps, supervisor) = start();
    let response = get(&supervisor, "/spa/assets/logo.png", &[]).await;
    let headers = response.headers();
    let etag = header(headers, "etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 4,
        "{etag}"
    );
    let modified = httpdate::parse_http_date(header(headers, "last-modified")).unwrap();
    let on_disk = std::fs::metadata(fixture_path_in(&apps, "assets/logo.png"))
        .unwrap()
        .modified()
        .unwrap();
    let gap = on_disk
        .duration_since(modified)
        .unwrap_or_else(|e| e.duration());
    assert!(
        gap.as_secs() < 1,
        "last-modified {modified:?} vs {on_disk:?}"
    );
    assert_eq!(header(headers, "accept-ranges"), "bytes");
}

#[tokio::test]
async fn etag_changes_when_the_file_changes() {
    let (apps, supervisor) = start();
    let before = get(&supervisor, "/spa/data.json", &[]).await;
    let before = header(before.headers(), "etag").to_owned();
    std::fs::write(fixture_path_in(&apps, "data.json"), "{\"changed\":true}\n").unwrap();
    let after = get(&supervisor, "/spa/data.json", &[("if-none-match", &before)]).await;
    assert_eq!(after.status(), 200);
    assert_ne!(header(after.headers(), "etag"), before);
    assert_eq!(after.text().await.unwrap(), "{\"changed\":true}\n");
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_answers_304_without_a_body() {
    let (_apps, supervisor) = start();
    let first = get(&supervisor, "/spa/assets/logo.png", &[]).await;
    let etag = header(first.headers(), "etag").to_owned();
    let again = get(
        &supervisor,
        "/spa/assets/logo.png",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(again.headers(), "etag"), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let listed = format!("\"other\", W/{etag}");
    let weak = get(
        &supervisor,
        "/spa/assets/logo.png",
        &[("if-none-match", &listed)],
    )
    .await;
    assert_eq!(weak.status(), 304);
}

#[tokio::test]
async fn if_modified_since_last_modified_answers_304() {
    let (_apps, supervisor) = start();
    let first = get(&supervisor, "/spa/assets/app.js", &[]).await;
    let modified = header(first.headers(), "last-modified").to_owned();
    let again = get(
        &supervisor,
        "/spa/assets/app.js",
        &[("if-modified-since", &modified)],
    )
    .await;
    assert_eq!(again.status(), 304);
    let old = "Thu, 01 Jan 1970 00:00:00 GMT";
    let stale = get(
        &supervisor,
        "/spa/assets/app.js",
        &[("if-modified-since", old)],
    )
    .await;
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn if_none_match_takes_precedence_over_if_modified_since() {
    let (_apps, supervisor) = start();
    let first = get(&supervisor, "/spa/assets/logo.png", &[]).await;
    let modified = header(first.headers(), "last-modified").to_owned();
    let response = get(
        &supervisor,
        "/spa/assets/logo.png",
        &[
            ("if-none-match", "\"not-the-etag\""),
            ("if-modified-since", &modified),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
}

// Ranges

async fn range(supervisor: &Supervisor, spec: &str) -> Response {
    get(supervisor, "/spa/assets/big.js", &[("range", spec)]).await
}

#[tokio::test]
async fn range_with_start_and_end_answers_206_with_those_bytes() {
    let (_apps, supervisor) = start();
    let whole = fixture("assets/big.js");
    let response = range(&supervisor, "bytes=10-19").await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        header(response.headers(), "content-range"),
        format!("bytes 10-19/{}", whole.len())
    );
    assert_eq!(header(response.headers(), "content-length"), "10");
    assert_eq!(response.bytes().await.unwrap().as_ref(), &whole[10..20]);
}

#[tokio::test]
async fn open_ended_range_answers_206_to_the_end() {
    let (_apps, supervisor) = start();
    let whole = fixture("assets/big.js");
    let from = whole.len() - 100;
    let response = range(&supervisor, &format!("bytes={from}-")).await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        header(response.headers(), "content-range"),
        format!("bytes {from}-{}/{}", whole.len() - 1, whole.len())
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &whole[from..]);
}

#[tokio::test]
async fn suffix_range_answers_206_with_the_last_bytes() {
    let (_apps, supervisor) = start();
    let whole = fixture("assets/big.js");
    let response = range(&supervisor, "bytes=-25").await;
    assert_eq!(response.status(), 206);
    let len = whole.len();
    assert_eq!(
        header(response.headers(), "content-range"),
        format!("bytes {}-{}/{len}", len - 25, len - 1)
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &whole[len - 25..]);
}

#[tokio::test]
async fn range_past_the_end_answers_416_with_the_size() {
    let (_apps, supervisor) = start();
    let len = fixture("assets/big.js").len();
    let response = range(&supervisor, &format!("bytes={len}-")).await;
    assert_eq!(response.status(), 416);
    assert_eq!(
        header(response.headers(), "content-range"),
        format!("bytes */{len}")
    );
}

#[tokio::test]
async fn if_range_with_a_stale_etag_answers_200_with_the_whole_file() {
    let (_apps, supervisor) = start();
    let whole = fixture("assets/big.js");
    let response = get(
        &supervisor,
        "/spa/assets/big.js",
        &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-range").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), whole.as_slice());
}

#[tokio::test]
async fn if_range_with_the_current_etag_or_date_answers_206() {
    let (_apps, supervisor) = start();
    let first = get(&supervisor, "/spa/assets/big.js", &[]).await;
    let etag = header(first.headers(), "etag").to_owned();
    let modified = header(first.headers(), "last-modified").to_owned();
    for validator in [etag, modified] {
        let response = get(
            &supervisor,
            "/spa/assets/big.js",
            &[("range", "bytes=0-9"), ("if-range", &validator)],
        )
        .await;
        assert_eq!(response.status(), 206, "if-range {validator}");
    }
}

#[tokio::test]
async fn several_ranges_are_answered_with_the_whole_file() {
    let (_apps, supervisor) = start();
    let response = range(&supervisor, "bytes=0-1,5-6").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap().len(),
        fixture("assets/big.js").len()
    );
}

#[tokio::test]
async fn range_requests_are_never_compressed() {
    let (_apps, supervisor) = start();
    let whole = fixture("assets/style.css");
    let response = get(
        &supervisor,
        "/spa/assets/style.css",
        &[("range", "bytes=0-99"), ("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(response.status(), 206);
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), &whole[..100]);
}

// Compression

#[tokio::test]
async fn precompressed_brotli_is_preferred_over_gzip() {
    let (_apps, supervisor) = start();
    let response = get(
        &supervisor,
        "/spa/assets/big.js",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(header(headers, "content-encoding"), "br");
    assert_eq!(header(headers, "vary"), "accept-encoding");
    assert_eq!(
        header(headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
    let expected = fixture("assets/big.js.br");
    assert_eq!(
        header(headers, "content-length"),
        expected.len().to_string()
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        expected.as_slice()
    );
}

#[tokio::test]
async fn precompressed_gzip_is_served_when_only_gzip_is_accepted() {
    let (_apps, supervisor) = start();
    let response = get(
        &supervisor,
        "/spa/assets/big.js",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header(response.headers(), "content-encoding"), "gzip");
    assert_eq!(header(response.headers(), "vary"), "accept-encoding");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.as_ref(), fixture("assets/big.js.gz").as_slice());
    assert_eq!(gunzip(&body), fixture("assets/big.js"));
}

#[tokio::test]
async fn identity_is_served_when_no_encoding_is_accepted() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa/assets/big.js", &[]).await;
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(header(response.headers(), "vary"), "accept-encoding");
    let refused = get(
        &supervisor,
        "/spa/assets/big.js",
        &[("accept-encoding", "br;q=0, gzip;q=0")],
    )
    .await;
    assert!(refused.headers().get("content-encoding").is_none());
    assert_eq!(
        refused.bytes().await.unwrap().as_ref(),
        fixture("assets/big.js").as_slice()
    );
}

#[tokio::test]
async fn encoded_variants_have_their_own_etags() {
    let (_apps, supervisor) = start();
    let mut etags = Vec::new();
    for accept in ["br", "gzip", "identity"] {
        let response = get(
            &supervisor,
            "/spa/assets/big.js",
            &[("accept-encoding", accept)],
        )
        .await;
        etags.push(header(response.headers(), "etag").to_owned());
    }
    assert_ne!(etags[0], etags[1]);
    assert_ne!(etags[1], etags[2]);
    assert_ne!(etags[0], etags[2]);
}

#[tokio::test]
async fn large_css_is_gzipped_on_the_fly() {
    let (_apps, supervisor) = start();
    let response = get(
        &supervisor,
        "/spa/assets/style.css",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(header(headers, "content-encoding"), "gzip");
    assert_eq!(header(headers, "vary"), "accept-encoding");
    assert_eq!(header(headers, "content-type"), "text/css; charset=utf-8");
    let length: usize = header(headers, "content-length").parse().unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let original = fixture("assets/style.css");
    assert!(body.len() < original.len());
    assert_eq!(gunzip(&body), original);
}

#[tokio::test]
async fn large_js_is_gzipped_on_the_fly() {
    let (_apps, supervisor) = start();
    let response = get(
        &supervisor,
        "/spa/assets/app.js",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header(response.headers(), "content-encoding"), "gzip");
    let body = response.bytes().await.unwrap();
    assert_eq!(gunzip(&body), fixture("assets/app.js"));
}

#[tokio::test]
async fn gzipped_response_revalidates_with_its_own_etag() {
    let (_apps, supervisor) = start();
    let gzip = [("accept-encoding", "gzip")];
    let first = get(&supervisor, "/spa/assets/style.css", &gzip).await;
    let etag = header(first.headers(), "etag").to_owned();
    let again = get(
        &supervisor,
        "/spa/assets/style.css",
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(again.headers(), "vary"), "accept-encoding");
}

#[tokio::test]
async fn small_and_binary_files_are_not_compressed() {
    let (_apps, supervisor) = start();
    for path in ["/spa/assets/tiny.txt", "/spa/assets/logo.png"] {
        let response = get(&supervisor, path, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{path}"
        );
    }
}

// SPA fallback and directories

#[tokio::test]
async fn client_route_falls_back_to_the_entrypoint_with_base_injected() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa@1/some/client/route", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-type"),
        "text/html; charset=utf-8"
    );
    let expected =
        fixture_text("index.html").replacen("<head>", "<head><base href=\"/spa@1/\">", 1);
    assert_eq!(response.text().await.unwrap(), expected);
}

#[tokio::test]
async fn missing_file_with_an_extension_is_404_json() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa/missing.js", &[]).await;
    assert_eq!(response.status(), 404);
    assert!(header(response.headers(), "content-type").starts_with("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let nested = get(&supervisor, "/spa/assets/missing.css", &[]).await;
    assert_eq!(nested.status(), 404);
}

#[tokio::test]
async fn app_root_serves_the_entrypoint() {
    let (_apps, supervisor) = start();
    for path in ["/spa@1.0.0/", "/spa@1.0.0"] {
        let response = get(&supervisor, path, &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("spa@1.0.0 index"), "{path}: {body}");
    }
}

#[tokio::test]
async fn directory_serves_its_index_html() {
    let (_apps, supervisor) = start();
    for path in ["/spa/docs/", "/spa/docs"] {
        let response = get(&supervisor, path, &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.text().await.unwrap().contains("docs index page"));
    }
}

#[tokio::test]
async fn directory_without_index_falls_back_to_the_entrypoint() {
    let (_apps, supervisor) = start();
    let response = get(&supervisor, "/spa/assets/", &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("spa@1.0.0 index"));
}

// Path safety

#[tokio::test]
async fn dot_dot_segments_are_refused() {
    let (apps, supervisor) = start();
    plant_secret(&apps);
    for target in [
        "/spa@1.0.0/../secret.txt",
        "/spa/../secret.txt",
        "/spa@1.0.0/assets/../../secret.txt",
        "/spa@1.0.0/./../secret.txt",
    ] {
        assert_refused(&supervisor, target).await;
    }
}

#[tokio::test]
async fn percent_encoded_dot_dot_segments_are_refused() {
    let (apps, supervisor) = start();
    plant_secret(&apps);
    for target in [
        "/spa@1.0.0/%2e%2e/secret.txt",
        "/spa@1.0.0/%2E%2e/secret.txt",
        "/spa@1.0.0/.%2e/secret.txt",
        "/spa@1.0.0/a/%2e%2e/%2e%2e/secret.txt",
        "/spa@1.0.0/a/%2e%2e/%2e%2e/x",
    ] {
        assert_refused(&supervisor, target).await;
    }
}

#[tokio::test]
async fn encoded_slashes_and_backslashes_are_refused() {
    let (apps, supervisor) = start();
    plant_secret(&apps);
    for target in [
        "/spa@1.0.0/..%2fsecret.txt",
        "/spa@1.0.0/..%2Fsecret.txt",
        "/spa@1.0.0/..%5csecret.txt",
        "/spa@1.0.0/..\\secret.txt",
        "/spa@1.0.0/assets%2f..%2f..%2fsecret.txt",
    ] {
        assert_refused(&supervisor, target).await;
    }
}

#[tokio::test]
async fn nul_bytes_are_refused() {
    let (_apps, supervisor) = start();
    for target in ["/spa@1.0.0/%00", "/spa@1.0.0/index.html%00.png"] {
        let response = raw_get(&supervisor, target).await;
        assert_eq!(response.status, 400, "{target}");
    }
}

#[tokio::test]
async fn symlink_to_a_file_outside_the_app_is_not_served() {
    let (apps, supervisor) = start();
    let secret = plant_secret(&apps);
    let app = apps.path().join(APP);
    std::os::unix::fs::symlink(&secret, app.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, app.join("leak")).unwrap();
    assert_refused(&supervisor, "/spa@1.0.0/leak.txt").await;
    assert_refused(&supervisor, "/spa@1.0.0/leak").await;
}

#[tokio::test]
async fn symlink_to_a_directory_outside_the_app_is_not_served() {
    let (apps, supervisor) = start();
    plant_secret(&apps);
    let app = apps.path().join(APP);
    std::os::unix::fs::symlink(apps.path(), app.join("outside")).unwrap();
    assert_refused(&supervisor, "/spa@1.0.0/outside/secret.txt").await;
}

#[tokio::test]
async fn symlink_inside_the_app_is_served() {
    let (apps, supervisor) = start();
    let app = apps.path().join(APP);
    std::os::unix::fs::symlink(app.join("assets/app.js"), app.join("alias.js")).unwrap();
    let response = get(&supervisor, "/spa/alias.js", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        fixture_text("assets/app.js")
    );
}

#[tokio::test]
async fn dotfiles_are_not_found() {
    let (_apps, supervisor) = start();
    for path in ["/spa/.env", "/spa/%2eenv", "/spa/assets/.env"] {
        let response = get(&supervisor, path, &[]).await;
        assert_eq!(response.status(), 404, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("spa-dotfile-must-not-leak"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn app_config_files_are_not_served() {
    let apps = Apps::with(&[APP]);
    apps.config(APP, "{ env: { API_KEY: \"config-must-not-leak\" } }");
    let supervisor = Supervisor::start(&apps, &[]);
    let response = get(&supervisor, "/spa/worker.jsonc", &[]).await;
    assert_eq!(response.status(), 404);
    assert!(!response
        .text()
        .await
        .unwrap()
        .contains("config-must-not-leak"));
}

// <base href>

#[tokio::test]
async fn base_is_injected_after_head_under_a_range_base() {
    let (_apps, supervisor) = start();
    let body = get(&supervisor, "/spa@1/", &[]).await.text().await.unwrap();
    assert!(
        body.contains("<head><base href=\"/spa@1/\">\n<meta charset=\"utf-8\">"),
        "{body}"
    );
    assert_eq!(body.matches("<base").count(), 1);
}

#[tokio::test]
async fn base_is_injected_under_an_exact_version_base() {
    let (_apps, supervisor) = start();
    let body = get(&supervisor, "/spa@1.0.0/index.html", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("<head><base href=\"/spa@1.0.0/\">"), "{body}");
}

#[tokio::test]
async fn base_is_html_escaped() {
    let apps = Apps::with(&[APP]);
    std::fs::rename(apps.path().join(APP), apps.path().join("spa&'co@1.0.0")).unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    let response = raw_get(&supervisor, "/spa&'co@1/").await;
    assert_eq!(response.status, 200, "{}", response.head);
    let body = String::from_utf8(response.body).unwrap();
    assert!(
        body.contains("<head><base href=\"/spa&amp;&#39;co@1/\">"),
        "{body}"
    );
}

#[tokio::test]
async fn base_is_not_injected_when_the_document_has_one() {
    let (_apps, supervisor) = start();
    let body = get(&supervisor, "/spa@1/legacy.html", &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(body, fixture_text("legacy.html"));
    assert_eq!(body.matches("<base").count(), 1);
}

#[tokio::test]
async fn nested_html_gets_the_base_after_its_head_tag_whatever_its_case() {
    let (_apps, supervisor) = start();
    let body = get(&supervisor, "/spa@1/docs/guide.html", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("<HEAD data-page=\"guide\"><base href=\"/spa@1/\">\n<title>"),
        "{body}"
    );
}

#[tokio::test]
async fn injected_html_has_its_own_length_and_etag_per_base() {
    let (_apps, supervisor) = start();
    let mut etags = Vec::new();
    for path in ["/spa@1/", "/spa@1.0.0/"] {
        let response = get(&supervisor, path, &[]).await;
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        assert_eq!(header(&headers, "content-length"), body.len().to_string());
        etags.push(header(&headers, "etag").to_owned());
    }
    assert_ne!(etags[0], etags[1]);
    let again = get(&supervisor, "/spa@1/", &[("if-none-match", &etags[0])]).await;
    assert_eq!(again.status(), 304);
    let other = get(&supervisor, "/spa@1.0.0/", &[("if-none-match", &etags[0])]).await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn injected_html_can_be_gzipped() {
    let (apps, supervisor) = start();
    let padding = "<p>padding paragraph for a page over a kilobyte</p>\n".repeat(40);
    let page = format!(
        "<!doctype html><html><head><title>long</title></head><body>{padding}</body></html>"
    );
    std::fs::write(apps.path().join(APP).join("long.html"), &page).unwrap();
    let response = get(
        &supervisor,
        "/spa@1/long.html",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header(response.headers(), "content-encoding"), "gzip");
    let body = gunzip(&response.bytes().await.unwrap());
    let expected = page.replacen("<head>", "<head><base href=\"/spa@1/\">", 1);
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}

// Methods

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let (_apps, supervisor) = start();
    let got = get(&supervisor, "/spa/assets/style.css", &[]).await;
    let response = supervisor
        .client
        .head(supervisor.url("/spa/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for name in ["content-type", "content-length", "etag", "last-modified"] {
        assert_eq!(
            header(response.headers(), name),
            header(got.headers(), name),
            "{name}"
        );
    }
    assert_eq!(
        header(response.headers(), "content-length"),
        fixture("assets/style.css").len().to_string()
    );
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn post_is_405_with_allow() {
    let (_apps, supervisor) = start();
    let response = supervisor
        .client
        .post(supervisor.url("/spa/index.html"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(header(response.headers(), "allow"), "GET, HEAD");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}

// Large files

#[tokio::test]
async fn five_megabyte_file_streams_with_the_right_length() {
    let (apps, supervisor) = start();
    let len = 5 * 1024 * 1024 + 7;
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(apps.path().join(APP).join("assets/video.bin"), &content).unwrap();
    let mut response = get(&supervisor, "/spa/assets/video.bin", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-length"),
        len.to_string()
    );
    assert_eq!(
        header(response.headers(), "content-type"),
        "application/octet-stream"
    );
    let mut received = Vec::with_capacity(len);
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(chunks > 1, "the body came in one piece");
    assert_eq!(received.len(), len);
    assert!(
        received == content,
        "the streamed bytes differ from the file"
    );
}

#[tokio::test]
async fn range_deep_in_a_large_file_answers_206() {
    let (apps, supervisor) = start();
    let len = 5 * 1024 * 1024;
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(apps.path().join(APP).join("assets/video.bin"), &content).unwrap();
    let from = 4 * 1024 * 1024 + 3;
    let to = from + 200_000;
    let response = get(
        &supervisor,
        "/spa/assets/video.bin",
        &[("range", &format!("bytes={from}-{to}"))],
    )
    .await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &content[from..=to]
    );
}

/// Long enough after a file's last change for the supervisor to keep its bytes
/// between requests (it never keeps a file changed within the last two seconds).
const SETTLED: std::time::Duration = std::time::Duration::from_millis(3_100);

#[tokio::test]
async fn a_kept_file_changed_in_place_is_served_new_at_once() {
    let (apps, supervisor) = start();
    tokio::time::sleep(SETTLED).await;
    // The first request keeps the bytes, the second is answered from them.
    for _ in 0..2 {
        let response = get(&supervisor, "/spa/data.json", &[]).await;
        assert_eq!(response.bytes().await.unwrap(), fixture("data.json"));
    }
    // Same length, other bytes: only the file's times and identity tell.
    let changed: Vec<u8> = fixture("data.json")
        .iter()
        .map(u8::to_ascii_uppercase)
        .collect();
    assert_ne!(changed, fixture("data.json"));
    std::fs::write(fixture_path_in(&apps, "data.json"), &changed).unwrap();
    let response = get(&supervisor, "/spa/data.json", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), changed);
}

#[tokio::test]
async fn a_kept_gzipped_copy_follows_changes_to_its_file() {
    let (apps, supervisor) = start();
    tokio::time::sleep(SETTLED).await;
    let gzip = [("accept-encoding", "gzip")];
    for _ in 0..2 {
        let response = get(&supervisor, "/spa/assets/style.css", &gzip).await;
        assert_eq!(header(response.headers(), "content-encoding"), "gzip");
        assert_eq!(
            gunzip(&response.bytes().await.unwrap()),
            fixture("assets/style.css")
        );
    }
    let mut changed = fixture("assets/style.css");
    changed.extend_from_slice(b"\n.changed { color: red; }\n");
    std::fs::write(fixture_path_in(&apps, "assets/style.css"), &changed).unwrap();
    let response = get(&supervisor, "/spa/assets/style.css", &gzip).await;
    assert_eq!(gunzip(&response.bytes().await.unwrap()), changed);
}

#[tokio::test]
async fn a_served_file_that_is_removed_answers_404() {
    let (apps, supervisor) = start();
    assert_eq!(get(&supervisor, "/spa/data.json", &[]).await.status(), 200);
    std::fs::remove_file(fixture_path_in(&apps, "data.json")).unwrap();
    let response = get(&supervisor, "/spa/data.json", &[]).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_directory_whose_index_is_removed_falls_back_to_the_entrypoint() {
    let (apps, supervisor) = start();
    let response = get(&supervisor, "/spa/docs/", &[]).await;
    assert!(response.text().await.unwrap().contains("docs index page"));
    std::fs::remove_file(fixture_path_in(&apps, "docs/index.html")).unwrap();
    let response = get(&supervisor, "/spa/docs/", &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("spa@1.0.0 index"));
}

#[tokio::test]
async fn a_precompressed_copy_added_later_is_served_within_seconds() {
    let (apps, supervisor) = start();
    let gzip = [("accept-encoding", "gzip")];
    let response = get(&supervisor, "/spa/data.json", &gzip).await;
    assert!(response.headers().get("content-encoding").is_none());
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &fixture("data.json")).unwrap();
    let compressed = encoder.finish().unwrap();
    std::fs::write(fixture_path_in(&apps, "data.json.gz"), &compressed).unwrap();
    tokio::time::sleep(SETTLED).await;
    let response = get(&supervisor, "/spa/data.json", &gzip).await;
    assert_eq!(header(response.headers(), "content-encoding"), "gzip");
    assert_eq!(response.bytes().await.unwrap(), compressed);
}

#[tokio::test]
async fn a_served_symlink_retargeted_outside_the_app_never_leaks() {
    let (apps, supervisor) = start();
    let secret = plant_secret(&apps);
    let app = apps.path().join(APP);
    let link = app.join("alias.js");
    std::os::unix::fs::symlink(app.join("assets/app.js"), &link).unwrap();
    let response = get(&supervisor, "/spa/alias.js", &[]).await;
    assert_eq!(
        response.text().await.unwrap(),
        fixture_text("assets/app.js")
    );
    // Retarget it in one step, as a deploy would, while its resolution is remembered.
    let next = app.join("alias.js.next");
    std::os::unix::fs::symlink(&secret, &next).unwrap();
    std::fs::rename(&next, &link).unwrap();
    // Within the two seconds the old target (inside the app) may still be served...
    let soon = raw_get(&supervisor, "/spa/alias.js").await;
    let body = String::from_utf8_lossy(&soon.body);
    assert!(!body.contains(SECRET), "leaked: {body}");
    assert!(
        soon.status == 404 || body == fixture_text("assets/app.js"),
        "{} {body}",
        soon.status
    );
    // ...after them the link is resolved again and refused.
    tokio::time::sleep(SETTLED).await;
    assert_refused(&supervisor, "/spa/alias.js").await;
}

//! Proxy rules: the real supervisor proxying to real HTTP, HTTPS and WebSocket
//! targets started by each test on 127.0.0.1. No request here reaches a child
//! except the one that checks a path no rule takes still goes to the app.

mod common;
mod proxy_support;

use std::time::{Duration, Instant};

use common::{rss_bytes, Apps, Supervisor};
use futures_util::{SinkExt, StreamExt};
use proxy_support::http_target::{pattern_chunk, HttpTarget};
use proxy_support::tls::self_signed_acceptor;
use proxy_support::ws_target::WsTarget;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const APP: &str = "proxy@1.0.0";

type WsClient = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A supervisor serving the proxy fixture with `config` as its `worker.jsonc`.
fn start(config: &str) -> (Apps, Supervisor) {
    start_with_env(config, &[])
}

fn start_with_env(config: &str, env: &[(&str, &str)]) -> (Apps, Supervisor) {
    let apps = Apps::with(&[APP]);
    apps.config(APP, config);
    let supervisor = Supervisor::start_with_env(&apps, &[], env);
    (apps, supervisor)
}

/// `{ proxy: [rules] }`.
fn rules(rules: &str) -> String {
    format!("{{ proxy: [{rules}] }}")
}

/// GETs `path` under the app, expecting the HTTP target's JSON echo.
async fn echo(supervisor: &Supervisor, path: &str) -> Value {
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Every value the target saw for header `name`.
fn header_values(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str() == Some(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

fn header(echo: &Value, name: &str) -> Option<String> {
    header_values(echo, name).into_iter().next()
}

/// The supervisor's `host:port`.
fn authority(supervisor: &Supervisor) -> String {
    supervisor.base.trim_start_matches("http://").to_owned()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[tokio::test]
async fn first_matching_rule_wins_and_other_paths_reach_the_app() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/api/special", target: "{url}", headers: {{ "x-rule": "first" }} }},
           {{ pattern: "^/api/", target: "{url}", headers: {{ "x-rule": "second" }} }},
           {{ pattern: "^/api/special", target: "{url}", headers: {{ "x-rule": "third" }} }}"#
    )));
    let special = echo(&supervisor, "/api/special/1").await;
    assert_eq!(header(&special, "x-rule").as_deref(), Some("first"));
    assert_eq!(special["path"], "/api/special/1");
    let other = echo(&supervisor, "/api/other").await;
    assert_eq!(header(&other, "x-rule").as_deref(), Some("second"));
    let (status, body) = supervisor.get(&format!("/{APP}/elsewhere")).await;
    assert_eq!((status, body.as_str()), (200, "app /elsewhere"));
}

#[tokio::test]
async fn rewrite_uses_numbered_and_named_groups() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/api/(?<version>v\\d+)/users/(\\d+)$", target: "{url}/base/",
              rewrite: "/$version/people/$2/${{version}}-$<version>" }},
           {{ pattern: "^/strip", target: "{url}", rewrite: "" }}"#
    )));
    let rewritten = echo(&supervisor, "/api/v2/users/42").await;
    assert_eq!(rewritten["path"], "/base/v2/people/42/v2-v2");
    let stripped = echo(&supervisor, "/strip/a/b").await;
    assert_eq!(stripped["path"], "/a/b");
}

#[tokio::test]
async fn env_placeholders_fill_the_target() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start_with_env(
        &rules(r#"{ pattern: "^/env/", target: "${PROXY_TEST_TARGET}/from-env" }"#),
        &[("PROXY_TEST_TARGET", url.as_str())],
    );
    let seen = echo(&supervisor, "/env/x").await;
    assert_eq!(seen["path"], "/from-env/env/x");
}

#[tokio::test]
async fn unset_env_placeholder_is_a_config_error_naming_it() {
    let (_apps, supervisor) = start(&rules(
        r#"{ pattern: "^/env/", target: "${PROXY_TEST_SURELY_UNSET}" }"#,
    ));
    let (status, body) = supervisor.get(&format!("/{APP}/env/x")).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("PROXY_TEST_SURELY_UNSET is not set") && body.contains("proxy"),
        "{body}"
    );
}

#[tokio::test]
async fn change_origin_sets_host_and_origin_to_the_target() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/changed/", target: "{url}", changeOrigin: true }},
           {{ pattern: "^/kept/", target: "{url}" }}"#
    )));
    let get = |path: &'static str| {
        supervisor
            .client
            .get(supervisor.url(&format!("/{APP}{path}")))
            .header("origin", "http://client.example")
            .send()
    };
    let changed: Value = get("/changed/x").await.unwrap().json().await.unwrap();
    assert_eq!(header(&changed, "host"), Some(target.addr.to_string()));
    assert_eq!(header(&changed, "origin"), Some(url.clone()));
    assert_eq!(
        header(&changed, "x-forwarded-host"),
        Some(authority(&supervisor))
    );
    let kept: Value = get("/kept/x").await.unwrap().json().await.unwrap();
    assert_eq!(header(&kept, "host"), Some(authority(&supervisor)));
    assert_eq!(
        header(&kept, "origin").as_deref(),
        Some("http://client.example")
    );
}

#[tokio::test]
async fn rule_headers_are_added_and_win_over_the_clients() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/", target: "{url}",
              headers: {{ "x-api-key": "secret-key", "X-Override": "from the rule" }} }}"#
    )));
    let seen: Value = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/h")))
        .header("x-override", "from the client")
        .header("x-client", "kept")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(header_values(&seen, "x-api-key"), ["secret-key"]);
    assert_eq!(header_values(&seen, "x-override"), ["from the rule"]);
    assert_eq!(header_values(&seen, "x-client"), ["kept"]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(r#"{{ pattern: "^/", target: "{url}" }}"#)));
    let send = |url: String| {
        supervisor
            .client
            .get(url)
            .header("connection", "keep-alive, x-drop-me")
            .header("x-drop-me", "named in connection")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("te", "trailers")
            .header("trailer", "x-checksum")
            .header("x-kept", "yes")
            .send()
    };
    // The same request straight to the target: the client library sends them all.
    let direct: Value = send(format!("{url}/in"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for sent in [
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ] {
        assert!(
            header(&direct, sent).is_some(),
            "{sent} was not sent at all"
        );
    }
    let seen: Value = send(supervisor.url(&format!("/{APP}/in")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for gone in [
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "connection",
    ] {
        assert_eq!(header(&seen, gone), None, "{gone} reached the target");
    }
    assert_eq!(header(&seen, "x-kept").as_deref(), Some("yes"));

    let direct = supervisor
        .client
        .get(format!("{url}/hop-out"))
        .send()
        .await
        .unwrap();
    assert!(direct.headers().contains_key("x-hop-out"));
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/hop-out")))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    for gone in ["x-hop-out", "keep-alive", "proxy-connection", "trailer"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the client");
    }
    assert_eq!(headers["x-kept"], "yes");
    assert_eq!(response.text().await.unwrap(), "hop");
}

#[tokio::test]
async fn query_string_is_kept_exactly() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/search$", target: "{url}", rewrite: "/find" }}"#
    )));
    let query = "q=a%20b&x=1&x=2&empty=&plus=a+b&raw=%2F%3F";
    let seen = echo(&supervisor, &format!("/search?{query}")).await;
    assert_eq!(seen["path"], "/find");
    assert_eq!(seen["query"], query);
}

#[tokio::test]
async fn forwarded_headers_and_request_id_are_set() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(r#"{{ pattern: "^/", target: "{url}" }}"#)));
    let response = supervisor
        .client
        .post(supervisor.url(&format!("/{APP}/fwd")))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-request-id", "client-chosen-id")
        .body("posted body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "posted body");
    assert_eq!(
        header(&seen, "x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(header(&seen, "x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        header(&seen, "x-forwarded-host"),
        Some(authority(&supervisor))
    );
    assert_eq!(
        header(&seen, "x-request-id").as_deref(),
        Some("client-chosen-id")
    );

    // Without one from the client, the supervisor's id goes to the target and back.
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/fwd")))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(header(&seen, "x-request-id"), Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_stream_both_ways_in_bounded_memory() {
    const TOTAL: u64 = 50 << 20;
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(r#"{{ pattern: "^/", target: "{url}" }}"#)));
    let pid = supervisor.pid_of_supervisor();
    echo(&supervisor, "/warm-up").await;
    let before = rss_bytes(pid);

    let chunks = futures_util::stream::unfold(0u64, |sent| async move {
        if sent >= TOTAL {
            return None;
        }
        let len = (TOTAL - sent).min(64 * 1024);
        let chunk = pattern_chunk(sent, len as usize);
        Some((Ok::<_, std::io::Error>(chunk), sent + len))
    });
    let uploaded: Value = supervisor
        .client
        .post(supervisor.url(&format!("/{APP}/upload")))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(uploaded["bytes"], TOTAL);
    assert_eq!(uploaded["intact"], true);
    let after_upload = rss_bytes(pid);

    let mut response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/download?bytes={TOTAL}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0u64;
    let mut intact = true;
    while let Some(chunk) = response.chunk().await.unwrap() {
        intact &= chunk == pattern_chunk(received, chunk.len());
        received += chunk.len() as u64;
    }
    assert_eq!(received, TOTAL);
    assert!(intact, "downloaded bytes differ from what the target sent");
    let after_download = rss_bytes(pid);

    let grown = after_upload.max(after_download).saturating_sub(before);
    assert!(
        grown < 10 << 20,
        "supervisor RSS grew by {} KiB (before {} KiB, after upload {} KiB, after download {} KiB)",
        grown >> 10,
        before >> 10,
        after_upload >> 10,
        after_download >> 10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_slows_the_target_and_leaving_stops_it() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&rules(&format!(r#"{{ pattern: "^/", target: "{url}" }}"#)));
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/endless")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let produced = target.produced.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        produced < 48 << 20,
        "the target produced {} MiB for a client that read nothing",
        produced >> 20
    );
    drop(response);
    let stopped = common::eventually(Duration::from_secs(5), || {
        target
            .endless_dropped
            .load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    assert!(stopped, "the target kept streaming after the client left");
}

#[tokio::test]
async fn unreachable_target_answers_502_within_a_second() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/", target: "http://127.0.0.1:{port}" }}"#
    )));
    let started = Instant::now();
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/down")))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(response.status(), 502);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PROXY_TARGET_UNREACHABLE");
    assert_eq!(body["error"]["requestId"], id.as_str());
    let target_as_written = format!("http://127.0.0.1:{port}");
    assert!(
        supervisor
            .wait_for_log(
                &["proxy target failed", APP, &target_as_written],
                Duration::from_secs(2)
            )
            .await,
        "{}",
        supervisor.log_text()
    );
}

#[tokio::test]
async fn hanging_target_answers_504_at_the_app_timeout() {
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&format!(
        r#"{{ timeout: "1s", proxy: [{{ pattern: "^/", target: "{url}" }}] }}"#
    ));
    let started = Instant::now();
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/hang")))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PROXY_TARGET_TIMEOUT");
}

#[tokio::test]
async fn upload_longer_than_the_timeout_is_not_cut_off_while_it_moves() {
    const CHUNKS: u64 = 10;
    const CHUNK: u64 = 1000;
    let target = HttpTarget::start().await;
    let url = target.url("http");
    let (_apps, supervisor) = start(&format!(
        r#"{{ timeout: "1s", proxy: [{{ pattern: "^/", target: "{url}" }}] }}"#
    ));
    let chunks = futures_util::stream::unfold(0u64, |sent| async move {
        if sent == CHUNKS * CHUNK {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((
            Ok::<_, std::io::Error>(pattern_chunk(sent, CHUNK as usize)),
            sent + CHUNK,
        ))
    });
    let started = Instant::now();
    let response = supervisor
        .client
        .post(supervisor.url(&format!("/{APP}/upload")))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() > Duration::from_secs(2));
    assert_eq!(response.status(), 200);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["bytes"], CHUNKS * CHUNK);
    assert_eq!(uploaded["intact"], true);
}

#[tokio::test]
async fn https_target_needs_secure_false_for_a_self_signed_certificate() {
    let target = HttpTarget::start_tls(self_signed_acceptor()).await;
    let url = target.url("https");
    let (_apps, supervisor) = start(&rules(&format!(
        r#"{{ pattern: "^/insecure/", target: "{url}", secure: false }},
           {{ pattern: "^/verified/", target: "{url}" }}"#
    )));
    let seen = echo(&supervisor, "/insecure/x").await;
    assert_eq!(seen["path"], "/insecure/x");
    // A connection to the same target is now pooled; it must not be reused here.
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/verified/x")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PROXY_TARGET_UNREACHABLE");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn invalid_pattern_is_a_config_error_naming_the_rule() {
    let (_apps, supervisor) = start(&rules(
        r#"{ pattern: "^/ok", target: "http://127.0.0.1:9" }, { pattern: "(", target: "http://127.0.0.1:9" }"#,
    ));
    let response = supervisor
        .client
        .get(supervisor.url(&format!("/{APP}/ok")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    for part in [
        "worker.jsonc",
        "\"proxy\"",
        "rule 1",
        "pattern \"(\" is not a valid regular expression",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

/// A supervisor whose app proxies `/ws/*` to `target` (with `extra` rule keys).
fn start_ws(target: &WsTarget, extra: &str) -> (Apps, Supervisor) {
    start(&rules(&format!(
        r#"{{ pattern: "^/ws/(.*)$", target: "{}", rewrite: "/$1" {extra} }}"#,
        target.url()
    )))
}

fn ws_url(supervisor: &Supervisor, path: &str) -> String {
    format!(
        "{}/{APP}/ws{path}",
        supervisor.base.replacen("http://", "ws://", 1)
    )
}

async fn connect(supervisor: &Supervisor, path: &str) -> WsClient {
    let (client, response) = tokio_tungstenite::connect_async(ws_url(supervisor, path))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    client
}

/// The next message that is not a ping or pong.
async fn next_message(client: &mut WsClient) -> Option<Result<Message, WsError>> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a message within 10 s");
        match next {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return other,
        }
    }
}

/// Message `i` of a deterministic mix: every 1000th is 1 MiB, the rest 1 B – 4 KiB;
/// even ones are text, odd ones binary.
fn mixed_message(i: usize) -> Message {
    let len = if i % 1000 == 500 {
        1 << 20
    } else {
        1 + (i * 7919) % 4096
    };
    if i.is_multiple_of(2) {
        let text: String = (0..len)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        Message::text(text)
    } else {
        let bytes: Vec<u8> = (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect();
        Message::binary(bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ten_thousand_mixed_messages_echo_in_order() {
    const COUNT: usize = 10_000;
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let client = connect(&supervisor, "/echo").await;
    let (mut sink, mut stream) = client.split();
    let sender = tokio::spawn(async move {
        for i in 0..COUNT {
            sink.send(mixed_message(i)).await.unwrap();
        }
        sink
    });
    for i in 0..COUNT {
        let received = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an echo within 10 s")
            .expect("open")
            .expect("valid");
        assert!(received == mixed_message(i), "message {i} differs");
    }
    let mut sink = sender.await.unwrap();
    sink.send(Message::Close(None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sixteen_megabyte_message_passes_both_ways() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let mut client = connect(&supervisor, "/echo").await;
    let big: Vec<u8> = (0..16 << 20).map(|i: usize| (i % 253) as u8).collect();
    client.send(Message::binary(big.clone())).await.unwrap();
    match next_message(&mut client).await {
        Some(Ok(Message::Binary(echoed))) => assert!(echoed == big, "the echo differs"),
        other => panic!(
            "expected the 16 MiB echo, got {:?}",
            other.map(|m| m.map(|m| m.len()))
        ),
    }
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_close_code_and_reason_pass_both_ways() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");

    // Client first: the target sees the client's code and reason.
    let mut client = connect(&supervisor, "/echo").await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::Library(4000),
            reason: "client bye".into(),
        }))
        .await
        .unwrap();
    while let Some(Ok(_)) = next_message(&mut client).await {}
    assert_target_saw_close(&target, 4000, "client bye", Duration::from_secs(3)).await;

    // Target first: the client sees the target's code and reason.
    let mut client = connect(&supervisor, "/echo").await;
    client.send(Message::text("close-me")).await.unwrap();
    match next_message(&mut client).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "bye from target");
        }
        other => panic!("expected the target's close, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_killed_target_closes_the_client_promptly() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let mut client = connect(&supervisor, "/echo").await;
    client.send(Message::text("alive?")).await.unwrap();
    assert_eq!(
        next_message(&mut client).await.unwrap().unwrap(),
        Message::text("alive?")
    );
    let killed = Instant::now();
    target.kill();
    let ending = tokio::time::timeout(Duration::from_secs(2), next_message(&mut client))
        .await
        .expect("the client learns within 2 s");
    match ending {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Error);
            assert_eq!(frame.reason.as_str(), "proxy target closed the connection");
        }
        other => panic!("expected a 1011 close, got {other:?}"),
    }
    assert!(killed.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn websocket_dropped_client_closes_the_target_with_1001() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let mut client = connect(&supervisor, "/echo").await;
    client.send(Message::text("alive?")).await.unwrap();
    assert_eq!(
        next_message(&mut client).await.unwrap().unwrap(),
        Message::text("alive?")
    );
    drop(client);
    assert_target_saw_close(&target, 1001, "client went away", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn websocket_pings_reach_the_target_and_pongs_come_back() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let mut client = connect(&supervisor, "/echo").await;
    client
        .send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("are you there".into()));
    let reached = common::eventually(Duration::from_secs(2), || {
        target
            .pings
            .lock()
            .unwrap()
            .contains(&b"are you there".to_vec())
    })
    .await;
    assert!(reached, "the ping did not reach the target");
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_subprotocol_and_headers_reach_the_target() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, r#", headers: { "x-from-rule": "rule" }"#);
    let mut request = ws_url(&supervisor, "/echo").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    headers.insert("cookie", "session=abc".parse().unwrap());
    headers.insert("authorization", "Bearer token-1".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    assert!(response.headers().contains_key("x-request-id"));
    client.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        next_message(&mut client).await.unwrap().unwrap(),
        Message::text("hi")
    );
    let seen = target.handshakes.lock().unwrap()[0].clone();
    assert_eq!(seen["sec-websocket-protocol"], "chat.v1, chat.v2");
    assert_eq!(seen["cookie"], "session=abc");
    assert_eq!(seen["authorization"], "Bearer token-1");
    assert_eq!(seen["x-from-rule"], "rule");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["host"], authority(&supervisor).as_str());
    assert!(seen.contains_key("x-request-id"));
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_refused_upgrade_passes_the_target_status() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    match tokio_tungstenite::connect_async(ws_url(&supervisor, "/refuse")).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = response.body().clone().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&body), "target says no");
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn websocket_upgrade_on_a_rule_with_ws_false_is_refused() {
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, ", ws: false");
    match tokio_tungstenite::connect_async(ws_url(&supervisor, "/echo")).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("PROXY_WEBSOCKET_DISABLED"), "{body}");
        }
        other => panic!("expected 400, got {:?}", other.map(|(_, r)| r.status())),
    }
    assert!(target.handshakes.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_two_hundred_concurrent_sessions() {
    const SESSIONS: usize = 200;
    let target = WsTarget::start().await;
    let (_apps, supervisor) = start_ws(&target, "");
    let url = ws_url(&supervisor, "/echo");
    let mut sessions = tokio::task::JoinSet::new();
    for session in 0..SESSIONS {
        let url = url.clone();
        sessions.spawn(async move {
            let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for round in 0..5 {
                let text = format!("session {session} round {round}");
                client.send(Message::text(text.clone())).await.unwrap();
                let echoed = next_message(&mut client).await.unwrap().unwrap();
                assert_eq!(echoed, Message::text(text));
            }
            client.close(None).await.unwrap();
        });
    }
    let mut done = 0;
    while let Some(result) = sessions.join_next().await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, SESSIONS);
}

/// Waits until the WebSocket target has seen a close with `code` and `reason`.
async fn assert_target_saw_close(target: &WsTarget, code: u16, reason: &str, within: Duration) {
    let expected = (code, reason.to_owned());
    let seen =
        common::eventually(within, || target.closes.lock().unwrap().contains(&expected)).await;
    assert!(seen, "target saw {:?}", target.closes.lock().unwrap());
}

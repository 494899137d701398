//! What a client sees of requests to apps: forms of apps, bytes kept exactly,
//! streaming, concurrency and cancellation.

mod common;

/// How long a test waits for a log line to be read from the supervisor's stderr.
const LOG_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

use std::time::Duration;

use common::{eventually, rss_bytes, Apps, Supervisor};
use futures_util::StreamExt;

#[tokio::test]
async fn fetch_style_app_answers() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(
        supervisor.get("/hello/").await,
        (200, "Hello from hello@1.0.0".into())
    );
    let response = supervisor
        .client
        .get(supervisor.url("/hello@1/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"app":"hello","version":"1.0.0"}"#
    );
}

#[tokio::test]
async fn string_responses_get_the_same_content_type_as_bun_serve() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain;charset=utf-8"
    );
}

#[tokio::test]
async fn routes_style_app_answers_with_params_methods_files_and_fallback() {
    let apps = Apps::with(&["routes@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(
        supervisor.get("/routes/").await,
        (200, "routes home".into())
    );
    assert_eq!(
        supervisor.get("/routes/users/42").await,
        (200, r#"{"id":"42"}"#.into())
    );
    assert_eq!(
        supervisor.get("/routes/items").await,
        (200, r#"{"items":[]}"#.into())
    );
    let created = supervisor
        .client
        .post(supervisor.url("/routes/items"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.text().await.unwrap(), r#"{"created":{"name":"x"}}"#);
    assert_eq!(
        supervisor.get("/routes/file").await,
        (200, "file contents\n".into())
    );
    assert_eq!(
        supervisor.get("/routes/files/a/b").await,
        (200, "wild /files/a/b".into())
    );
    assert_eq!(
        supervisor.get("/routes/nowhere").await,
        (404, "fallback /nowhere".into())
    );
}

#[tokio::test]
async fn an_app_instance_with_a_fetch_method_is_served() {
    let apps = Apps::with(&["hono-style@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(
        supervisor.get("/hono-style/").await,
        (200, "mini router".into())
    );
}

#[tokio::test]
async fn method_path_query_and_headers_reach_the_app_exactly() {
    let apps = Apps::with(&["echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .request(
            reqwest::Method::PATCH,
            supervisor.url("/echo@1.0.0/inspect?a=1&b=%20x&a=2"),
        )
        .header("x-one", "1")
        .header(
            "x-latin",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .header("x-request-id", "client-id-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-7");
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "PATCH");
    assert_eq!(seen["path"], "/inspect?a=1&b=%20x&a=2");
    assert!(seen["url"]
        .as_str()
        .unwrap()
        .ends_with("/inspect?a=1&b=%20x&a=2"));
    let header = |name: &str| common::seen_header(&seen, name);
    assert_eq!(header("x-one").as_deref(), Some("1"));
    assert_eq!(header("x-latin").as_deref(), Some("caf\u{e9}"));
    assert_eq!(header("x-base").as_deref(), Some("/echo@1.0.0"));
    assert_eq!(header("x-request-id").as_deref(), Some("client-id-7"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn status_multi_value_cookies_raw_headers_and_binary_bodies_come_back_exactly() {
    let apps = Apps::with(&["echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/echo/cookies"))
        .send()
        .await
        .unwrap();
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .cloned()
        .collect();
    assert_eq!(cookies, vec!["a=1; Path=/", "b=2; HttpOnly"]);
    assert!(response.headers().contains_key("x-request-id"));

    let response = supervisor
        .client
        .get(supervisor.url("/echo/status/418"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 418);

    let response = supervisor
        .client
        .get(supervisor.url("/echo/headers-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-custom"], "value");
    assert_eq!(response.headers()["x-raw"].as_bytes(), b"caf\xe9");

    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let response = supervisor
        .client
        .post(supervisor.url("/echo/echo"))
        .header("content-type", "application/x-test")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-test");
    assert_eq!(response.bytes().await.unwrap().to_vec(), body);
}

#[tokio::test]
async fn request_ids_are_generated_when_the_client_sends_none() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let first = supervisor
        .client
        .get(supervisor.url("/hello"))
        .send()
        .await
        .unwrap();
    let second = supervisor
        .client
        .get(supervisor.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 404);
    let (a, b) = (
        first.headers()["x-request-id"].clone(),
        second.headers()["x-request-id"].clone(),
    );
    assert_ne!(a, b);
    let error: serde_json::Value = second.json().await.unwrap();
    assert_eq!(error["error"]["code"], "APP_NOT_FOUND");
    assert_eq!(error["error"]["requestId"], b.to_str().unwrap());
}

#[tokio::test]
async fn twenty_concurrent_requests_to_one_child_all_answer_correctly() {
    let apps = Apps::with(&["slow@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("slow").await;
    let requests = (0..20).map(|i| {
        let ms = 100 + (i % 5) * 50;
        let url = supervisor.url(&format!("/slow/?ms={ms}"));
        let client = supervisor.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (
                ms,
                response.status().as_u16(),
                response.text().await.unwrap(),
            )
        }
    });
    for (ms, status, body) in futures_util::future::join_all(requests).await {
        assert_eq!((status, body), (200, format!("slept {ms}")));
    }
    assert_eq!(supervisor.pid("slow").await, pid, "all served by one child");
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_before_the_app_finishes_it() {
    let apps = Apps::with(&["stream@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/stream/gated"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("first chunk arrives while the app still holds the stream open")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    // The same child answers another request while the first stream is open.
    assert_eq!(
        supervisor.get("/stream/release").await,
        (200, "released".into())
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"second\n");
}

#[tokio::test]
async fn server_sent_events_stream_event_by_event() {
    let apps = Apps::with(&["stream@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/stream/sse?n=3&interval=50"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.text().await.unwrap(),
        "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    );
}

#[tokio::test]
async fn fifty_megabytes_stream_up_and_down_without_growing_the_supervisor() {
    let apps = Apps::with(&["echo@1.0.0"]);
    apps.config("echo@1.0.0", "{ maxBodySize: \"100mb\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    supervisor.pid("echo").await;
    let before = rss_bytes(supervisor.pid_of_supervisor());

    const SIZE: usize = 50 * 1024 * 1024;
    let chunks = futures_util::stream::iter(
        (0..SIZE / 65536).map(|_| Ok::<_, std::io::Error>(vec![7u8; 65536])),
    );
    let upload = supervisor
        .client
        .post(supervisor.url("/echo/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(
        upload.text().await.unwrap(),
        format!(r#"{{"bytes":{SIZE}}}"#)
    );
    let after_upload = rss_bytes(supervisor.pid_of_supervisor());

    let download = supervisor
        .client
        .get(supervisor.url("/echo/download?mb=50"))
        .send()
        .await
        .unwrap();
    let mut stream = download.bytes_stream();
    let mut received = 0usize;
    let mut intact = true;
    // A reader that stalls: the app must be held back, not buffered in the supervisor.
    let first = stream.next().await.unwrap().unwrap();
    for (offset, byte) in first.iter().enumerate() {
        intact &= *byte as usize == offset % 251;
    }
    received += first.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let while_stalled = rss_bytes(supervisor.pid_of_supervisor());
    assert!(
        while_stalled < before + limit_bytes(),
        "a stalled reader grew RSS from {before} to {while_stalled}"
    );
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for (offset, byte) in chunk.iter().enumerate() {
            intact &= *byte as usize == (received + offset) % 251;
        }
        received += chunk.len();
    }
    assert_eq!(received, SIZE);
    assert!(intact, "download bytes follow the app's pattern");
    let after_download = rss_bytes(supervisor.pid_of_supervisor());
    let limit = limit_bytes();
    assert!(
        after_upload < before + limit,
        "upload grew RSS from {before} to {after_upload}"
    );
    assert!(
        after_download < before + limit,
        "download grew RSS from {before} to {after_download}"
    );
}

fn limit_bytes() -> u64 {
    10 * 1024 * 1024
}

#[tokio::test]
async fn an_upload_the_app_does_not_read_never_blocks_other_requests_to_the_child() {
    let apps = Apps::with(&["slow@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("slow").await;
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let chunks = futures_util::stream::iter(0..800).map(move |i| {
        let _ = sent_tx.send(i);
        Ok::<_, std::io::Error>(vec![1u8; 65536])
    });
    // /wait never reads its body: the upload's window fills and stays full.
    let upload = tokio::spawn({
        let request = supervisor
            .client
            .post(supervisor.url("/slow/wait"))
            .body(reqwest::Body::wrap_stream(chunks));
        async move { request.send().await }
    });
    let mut sent = 0;
    while let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(500), sent_rx.recv()).await {
        sent = i;
    }
    assert!(
        sent < 799,
        "the upload is held back by flow control, not swallowed (sent {sent} chunks)"
    );
    for _ in 0..10 {
        assert_eq!(supervisor.get("/slow/?ms=1").await, (200, "slept 1".into()));
    }
    assert_eq!(
        supervisor.pid("slow").await,
        pid,
        "same child served them beside the stalled upload"
    );
    upload.abort();
}

#[tokio::test]
async fn a_client_that_disconnects_aborts_the_request_in_the_app() {
    let apps = Apps::with(&["slow@1.0.0", "stream@1.0.0"]);
    apps.config_with_evidence("slow@1.0.0", "");
    apps.config_with_evidence("stream@1.0.0", "");
    let supervisor = Supervisor::start(&apps, &[]);
    let waiting = tokio::spawn({
        let url = supervisor.url("/slow/wait");
        let client = supervisor.client.clone();
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    waiting.abort();
    assert!(
        eventually(Duration::from_secs(5), || apps.evidence_lines("slow.log")
            == ["aborted"])
        .await,
        "the app saw req.signal abort"
    );

    let response = supervisor
        .client
        .get(supervisor.url("/stream/endless"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(
        eventually(Duration::from_secs(5), || apps.evidence_lines("stream.log")
            == ["cancelled"])
        .await,
        "the endless stream was cancelled in the app"
    );
}

#[tokio::test]
async fn a_throwing_handler_answers_500_and_the_child_keeps_serving() {
    let apps = Apps::with(&["throws@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("throws").await;
    let (status, body) = supervisor.get("/throws/").await;
    assert_eq!(status, 500);
    assert!(body.contains("boom from throws"), "{body}");
    let (status, body) = supervisor.get("/throws/async").await;
    assert_eq!(status, 500);
    assert!(body.contains("async boom"), "{body}");
    assert!(
        supervisor
            .wait_for_log(
                &["app handler failed", "throws@1.0.0", "boom from throws"],
                LOG_WAIT
            )
            .await
    );
    assert_eq!(supervisor.pid("throws").await, pid);
}

#[tokio::test]
async fn children_get_the_app_env_but_never_secret_looking_variables() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start_with_env(
        &apps,
        &["--pass-env", "SECRET_TOKEN,DATABASE_URL"],
        &[("SECRET_TOKEN", "s3cret"), ("DATABASE_URL", "postgres://x")],
    );
    let (status, body) = supervisor.get("/hello/env").await;
    assert_eq!(status, 200);
    let env: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(env["GREETING"], "hi");
    assert_eq!(env["SECRET_TOKEN"], serde_json::Value::Null);
    assert_eq!(env["DATABASE_URL"], serde_json::Value::Null);
    assert_eq!(env["PATH_SET"], true);
    assert!(
        supervisor
            .wait_for_log(
                &["DATABASE_URL, SECRET_TOKEN", "look like secrets"],
                LOG_WAIT
            )
            .await
    );
}

#[tokio::test]
async fn child_output_is_logged_with_app_and_pid() {
    let apps = Apps::with(&["hello@1.0.0"]);
    std::fs::write(
        apps.path().join("hello@1.0.0/index.ts"),
        "console.log('started up'); console.error('a warning');\nexport default { fetch() { return new Response(String(process.pid)) } }",
    )
    .unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hello").await.to_string();
    assert!(
        supervisor
            .wait_for_log(
                &["started up", "hello@1.0.0", &pid, "stdout"],
                Duration::from_secs(5)
            )
            .await
    );
    assert!(
        supervisor
            .wait_for_log(
                &["a warning", "hello@1.0.0", &pid, "stderr"],
                Duration::from_secs(5)
            )
            .await
    );
}

//! Request size limits: headers (431) and bodies (413), declared and streamed.

mod common;

use std::time::Duration;

use common::{Apps, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes and returns the status code of the answer.
async fn raw_status(supervisor: &Supervisor, request: &[u8]) -> u16 {
    let address = supervisor.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn too_many_request_headers_get_431() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut request = b"GET /hello/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..150 {
        request.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    assert_eq!(raw_status(&supervisor, &request).await, 431);
    assert_eq!(supervisor.get("/hello/").await.0, 200, "still serving");
    // The limit is 100 headers in all: Host, 98 more and Connection pass.
    let mut request = b"GET /hello/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..98 {
        request.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    assert_eq!(raw_status(&supervisor, &request).await, 200);
}

#[tokio::test]
async fn one_oversized_request_header_gets_431_with_a_message() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/hello/"))
        .header("x-big", "a".repeat(9000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(response.text().await.unwrap().contains("x-big"));
}

#[tokio::test]
async fn request_headers_over_64_kib_in_total_get_431() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut request = b"GET /hello/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..20 {
        request.extend_from_slice(format!("x-h{i}: {}\r\n", "b".repeat(4000)).as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    assert_eq!(raw_status(&supervisor, &request).await, 431);
}

#[tokio::test]
async fn a_declared_body_over_the_app_limit_gets_413_before_it_is_read() {
    let apps = Apps::with(&["echo@1.0.0"]);
    apps.config("echo@1.0.0", "{ maxBodySize: \"1kb\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .post(supervisor.url("/echo/upload"))
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("BODY_TOO_LARGE"));
    let small = supervisor
        .client
        .post(supervisor.url("/echo/upload"))
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.text().await.unwrap(), r#"{"bytes":1000}"#);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let apps = Apps::with(&["echo@1.0.0"]);
    apps.config("echo@1.0.0", "{ maxBodySize: \"100kb\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![1u8; 32 * 1024])));
    let response = supervisor
        .client
        .post(supervisor.url("/echo/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        supervisor.get("/echo/pid").await.0,
        200,
        "the child keeps serving"
    );
}

#[tokio::test]
async fn the_global_default_and_ceiling_apply() {
    let apps = Apps::with(&["echo@1.0.0", "hello@1.0.0"]);
    apps.config("echo@1.0.0", "{ maxBodySize: \"1gb\" }");
    let supervisor = Supervisor::start(
        &apps,
        &["--max-body-size", "1kb", "--max-body-size-ceiling", "4kb"],
    );
    let post = |app: &str, size: usize| {
        supervisor
            .client
            .post(supervisor.url(&format!("/{app}/upload")))
            .body(vec![0u8; size])
            .send()
    };
    assert_eq!(
        post("hello", 2048).await.unwrap().status(),
        413,
        "default limit"
    );
    assert_eq!(
        post("echo", 3000).await.unwrap().status(),
        200,
        "app limit under the ceiling"
    );
    assert_eq!(post("echo", 5000).await.unwrap().status(), 413, "ceiling");
}

#[tokio::test]
async fn oversized_response_headers_from_a_child_get_502_and_a_log_line() {
    let apps = Apps::with(&["echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    for query in ["count=101", "bytes=9000", "count=90&bytes=8000"] {
        let (status, body) = supervisor
            .get(&format!("/echo/oversized-headers?{query}"))
            .await;
        if query == "count=90&bytes=8000" {
            assert_eq!(status, 200, "within every limit: {body}");
            continue;
        }
        assert_eq!(status, 502, "{query}: {body}");
        assert!(
            body.contains("BAD_RESPONSE_HEAD") && body.contains("echo@1.0.0"),
            "{body}"
        );
    }
    assert!(
        supervisor
            .wait_for_log(
                &["response head that cannot be passed on", "echo@1.0.0"],
                Duration::from_secs(5)
            )
            .await
    );
    assert_eq!(
        supervisor.get("/echo/oversized-headers?count=3").await.0,
        200
    );
}

//! WebSocket sessions into apps: real clients, the real supervisor, real children.

mod common;

use std::time::Duration;

use common::{eventually, process_alive, Apps, Supervisor};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(supervisor: &Supervisor, path: &str) -> Client {
    let url = format!("{}{path}", supervisor.base.replacen("http://", "ws://", 1));
    let (client, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade accepted");
    assert_eq!(response.status(), 101);
    client
}

/// The next text message, skipping pings.
async fn next_text(client: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a message within 10 s")
            .expect("the session is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The close frame the server sends, or None if the connection just ended.
async fn close_frame(client: &mut Client) -> Option<CloseFrame> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

fn size_of(i: usize) -> usize {
    match i {
        i if i % 1000 == 999 => 1024 * 1024,
        i if i % 100 == 50 => 100 * 1024,
        i if i % 10 == 5 => 10 * 1024,
        i => 1 + (i * 37) % 1000,
    }
}

fn payload(i: usize) -> Vec<u8> {
    (0..size_of(i))
        .map(|j| ((i * 31 + j * 7) % 251) as u8)
        .collect()
}

#[tokio::test]
async fn ten_thousand_messages_of_mixed_sizes_echo_back_in_order_and_intact() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let client = connect(&supervisor, "/ws-echo/").await;
    let (mut sink, mut source) = client.split();
    const COUNT: usize = 10_000;
    let sender = tokio::spawn(async move {
        for i in 0..COUNT {
            let message = if i % 2 == 0 {
                Message::Binary(payload(i).into())
            } else {
                Message::Text(
                    String::from_utf8(payload(i).iter().map(|b| b'a' + b % 26).collect())
                        .unwrap()
                        .into(),
                )
            };
            sink.send(message).await.unwrap();
        }
        sink
    });
    for i in 0..COUNT {
        let message = tokio::time::timeout(Duration::from_secs(30), source.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match message {
            Message::Binary(data) => {
                assert_eq!(i % 2, 0, "message {i} came back as binary");
                assert!(data[..] == payload(i)[..], "binary message {i} intact");
            }
            Message::Text(text) => {
                assert_eq!(i % 2, 1, "message {i} came back as text");
                let expected: Vec<u8> = payload(i).iter().map(|b| b'a' + b % 26).collect();
                assert!(text.as_bytes() == &expected[..], "text message {i} intact");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut sink = sender.await.unwrap();
    sink.send(Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn a_close_from_the_client_reaches_the_app_with_its_code_and_reason() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    apps.config_with_evidence("ws-echo@1.0.0", "");
    let supervisor = Supervisor::start(&apps, &[]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::from(4100),
            reason: "bye now".into(),
        }))
        .await
        .unwrap();
    let echoed = close_frame(&mut client)
        .await
        .expect("the close is answered");
    assert_eq!(u16::from(echoed.code), 4100);
    assert!(
        eventually(Duration::from_secs(5), || apps
            .evidence_lines("ws-echo.log")
            == ["close 4100 bye now"])
        .await,
        "{:?}",
        apps.evidence_lines("ws-echo.log")
    );
}

#[tokio::test]
async fn a_close_from_the_app_reaches_the_client_with_its_code_and_reason() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("close-me".into())).await.unwrap();
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4001);
    assert_eq!(frame.reason.as_str(), "asked to close");
}

#[tokio::test]
async fn a_child_that_dies_closes_its_sessions_promptly_with_1011() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("pid".into())).await.unwrap();
    let pid: u32 = next_text(&mut client).await.parse().unwrap();
    let mut bystander = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("crash".into())).await.unwrap();
    let frame = close_frame(&mut bystander).await;
    assert_eq!(
        frame.map(|f| u16::from(f.code)),
        Some(1011),
        "another session of the dead child"
    );
    assert!(eventually(Duration::from_secs(5), || !process_alive(pid)).await);
    let mut fresh = connect(&supervisor, "/ws-echo/").await;
    fresh.send(Message::Text("pid".into())).await.unwrap();
    assert_ne!(
        next_text(&mut fresh).await,
        pid.to_string(),
        "a new child serves new sessions"
    );
}

#[tokio::test]
async fn the_subprotocol_is_negotiated_end_to_end() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let url = format!(
        "{}/ws-echo/",
        supervisor.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v2, chat.v1".parse().unwrap(),
    );
    let (_client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
}

#[tokio::test]
async fn two_hundred_concurrent_sessions_into_one_app_all_work() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("ws-echo").await;
    let sessions = (0..200).map(|i| {
        let url = format!(
            "{}/ws-echo/",
            supervisor.base.replacen("http://", "ws://", 1)
        );
        async move {
            let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for round in 0..5 {
                let text = format!("session {i} round {round}");
                client
                    .send(Message::Text(text.clone().into()))
                    .await
                    .unwrap();
                assert_eq!(next_text(&mut client).await, text);
            }
            client.send(Message::Text("pid".into())).await.unwrap();
            next_text(&mut client).await
        }
    });
    let pids = futures_util::future::join_all(sessions).await;
    assert!(
        pids.iter().all(|p| *p == pid.to_string()),
        "all sessions served by one child"
    );
}

#[tokio::test]
async fn an_open_session_keeps_its_child_from_going_idle_or_expiring() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    apps.config("ws-echo@1.0.0", "{ ttl: \"1s\", idleTimeout: \"500ms\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("pid".into())).await.unwrap();
    let pid = next_text(&mut client).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client.send(Message::Text("pid".into())).await.unwrap();
    assert_eq!(
        next_text(&mut client).await,
        pid,
        "still the same child, still open"
    );
    client.close(None).await.unwrap();
    let pid: u32 = pid.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(pid)).await,
        "once the session ends the ttl applies again"
    );
}

#[tokio::test]
async fn shutdown_closes_open_sessions_with_1001() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let mut supervisor = Supervisor::start(&apps, &["--shutdown-grace", "4s"]);
    let mut client = connect(&supervisor, "/ws-echo/greet").await;
    assert!(next_text(&mut client).await.starts_with("hello from"));
    supervisor.signal(Signal::SIGTERM);
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
    let status = supervisor
        .wait_exit(Duration::from_secs(6))
        .expect("exits within the grace period");
    assert!(status.success());
}

#[tokio::test]
async fn a_request_the_app_does_not_upgrade_is_plain_http() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/ws-echo/").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "expected a WebSocket upgrade")
    );
}

#[tokio::test]
async fn chat_rooms_deliver_between_two_real_clients() {
    let apps = Apps::with(&["chat@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut alice = connect(&supervisor, "/chat/room/lobby?user=alice").await;
    assert_eq!(next_text(&mut alice).await, "welcome to lobby");
    let mut bob = connect(&supervisor, "/chat/room/lobby?user=bob").await;
    assert_eq!(next_text(&mut bob).await, "welcome to lobby");
    assert_eq!(next_text(&mut alice).await, "* bob joined");
    let mut carol = connect(&supervisor, "/chat/room/other?user=carol").await;
    assert_eq!(next_text(&mut carol).await, "welcome to other");

    alice.send(Message::Text("hi bob".into())).await.unwrap();
    assert_eq!(next_text(&mut bob).await, "alice: hi bob");
    bob.send(Message::Text("hi alice".into())).await.unwrap();
    assert_eq!(next_text(&mut alice).await, "bob: hi alice");
    carol.send(Message::Text("anyone?".into())).await.unwrap();
    bob.close(None).await.unwrap();
    assert_eq!(
        next_text(&mut alice).await,
        "* bob left",
        "carol's room stays separate"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_the_app_back_instead_of_filling_the_supervisor() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("pid".into())).await.unwrap();
    next_text(&mut client).await;
    let before = common::rss_bytes(supervisor.pid_of_supervisor());
    // 200 messages of 64 KiB (12.5 MiB) sent at once while the client reads nothing.
    client
        .send(Message::Text("flood 200".into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = common::rss_bytes(supervisor.pid_of_supervisor());
    assert!(
        stalled < before + 5 * 1024 * 1024,
        "RSS grew from {before} to {stalled} while the client stalled"
    );
    let mut received = 0;
    while received < 200 {
        match tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Binary(data) => {
                assert_eq!(data.len(), 65536);
                assert!(
                    data.iter().all(|b| *b as usize == received % 256),
                    "message {received} intact and in order"
                );
                received += 1;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_retiring_child_closes_its_sessions_with_1001_after_the_drain_deadline() {
    let apps = Apps::with(&["ws-echo@1.0.0"]);
    apps.config("ws-echo@1.0.0", "{ maxRequests: 1 }");
    let supervisor = Supervisor::start(&apps, &["--drain-timeout", "1s"]);
    let mut client = connect(&supervisor, "/ws-echo/").await;
    client.send(Message::Text("pid".into())).await.unwrap();
    let pid: u32 = next_text(&mut client).await.parse().unwrap();
    // The session was the child's one request: it retires, and the session holds it
    // open only until the drain deadline.
    let frame = close_frame(&mut client).await;
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
    assert!(eventually(Duration::from_secs(5), || !process_alive(pid)).await);
}

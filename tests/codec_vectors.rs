//! The Rust codec against the byte vectors the shim's codec is tested with
//! (`shim/test/vectors.json`): both sides must agree on every byte.

use buntime_supervisor::ipc::{
    decode_frame, decode_request, decode_response, decode_ws_accept, encode_frame, encode_request,
    encode_response, encode_ws_accept, FrameType, OutgoingRequest, ResponseHead,
};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

fn frame_type(name: &str) -> FrameType {
    match name {
        "HELLO" => FrameType::Hello,
        "READY" => FrameType::Ready,
        "FATAL" => FrameType::Fatal,
        "REQUEST" => FrameType::Request,
        "RESPONSE" => FrameType::Response,
        "DATA" => FrameType::Data,
        "END" => FrameType::End,
        "CREDIT" => FrameType::Credit,
        "CANCEL" => FrameType::Cancel,
        "ERROR" => FrameType::Error,
        "PING" => FrameType::Ping,
        "PONG" => FrameType::Pong,
        "IDLE" => FrameType::Idle,
        "TERMINATE" => FrameType::Terminate,
        "STATS_REQUEST" => FrameType::StatsRequest,
        "STATS" => FrameType::Stats,
        "WS_ACCEPT" => FrameType::WsAccept,
        "WS_MESSAGE" => FrameType::WsMessage,
        "WS_CLOSE" => FrameType::WsClose,
        other => panic!("unknown frame type in vectors: {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Vector strings carry one byte per char (Latin-1).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 char"))
        .collect()
}

fn headers(value: &Value) -> Vec<(String, Bytes)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let name = pair[0].as_str().unwrap().to_owned();
            (name, Bytes::from(latin1(pair[1].as_str().unwrap())))
        })
        .collect()
}

#[test]
fn rust_codec_matches_every_shared_vector() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shim/test/vectors.json");
    let vectors: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        vectors.len() >= 15,
        "the vector file covers every frame type"
    );
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let bytes = unhex(vector["hex"].as_str().unwrap());
        let spec = &vector["frame"];
        let kind = frame_type(spec["type"].as_str().unwrap());
        let stream = spec["stream"].as_u64().unwrap() as u32;

        let mut buffer = BytesMut::from(&bytes[..]);
        let frame = decode_frame(&mut buffer)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert!(buffer.is_empty(), "{name}: trailing bytes");
        assert_eq!((frame.kind, frame.stream), (kind, stream), "{name}");

        let mut encoded = BytesMut::new();
        match kind {
            FrameType::Hello
            | FrameType::Ready
            | FrameType::Fatal
            | FrameType::Error
            | FrameType::Stats => {
                let payload: Value = serde_json::from_slice(&frame.payload).unwrap();
                assert_eq!(payload, spec["json"], "{name}");
                encode_frame(&mut encoded, kind, stream, &frame.payload);
            }
            FrameType::Request => {
                let head = decode_request(frame.payload.clone()).unwrap();
                let expected = &spec["head"];
                assert_eq!(head.has_body, expected["body"].as_bool().unwrap(), "{name}");
                assert_eq!(head.method, expected["method"].as_str().unwrap(), "{name}");
                assert_eq!(head.url, expected["url"].as_str().unwrap(), "{name}");
                assert_eq!(
                    head.address,
                    expected["address"].as_str().unwrap(),
                    "{name}"
                );
                let pairs = headers(&expected["headers"]);
                assert_eq!(head.headers, pairs, "{name}");
                let mut map = HeaderMap::new();
                for (header, value) in &pairs {
                    map.append(
                        HeaderName::from_bytes(header.as_bytes()).unwrap(),
                        HeaderValue::from_bytes(value).unwrap(),
                    );
                }
                let same_order = map
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                    .eq(pairs.iter().cloned());
                if !same_order {
                    // A header map groups repeated names; the decode check above stands.
                    continue;
                }
                let request = OutgoingRequest {
                    method: &head.method,
                    url: &head.url,
                    address: &head.address,
                    headers: &map,
                    overrides: &[],
                };
                encode_request(&mut encoded, stream, head.has_body, &request).unwrap();
            }
            FrameType::Response => {
                let head = decode_response(frame.payload.clone()).unwrap();
                let expected = &spec["head"];
                let want = ResponseHead {
                    has_body: expected["body"].as_bool().unwrap(),
                    status: expected["status"].as_u64().unwrap() as u16,
                    headers: headers(&expected["headers"]),
                };
                assert_eq!(head, want, "{name}");
                encode_response(&mut encoded, stream, &want).unwrap();
            }
            FrameType::Data | FrameType::Ping | FrameType::Pong => {
                let data = unhex(spec["dataHex"].as_str().unwrap());
                assert_eq!(&frame.payload[..], &data[..], "{name}");
                encode_frame(&mut encoded, kind, stream, &data);
            }
            FrameType::WsAccept => {
                let headers_seen = decode_ws_accept(frame.payload.clone()).unwrap();
                let expected = headers(&spec["headers"]);
                assert_eq!(headers_seen, expected, "{name}");
                encode_ws_accept(&mut encoded, stream, &expected).unwrap();
            }
            FrameType::WsMessage => {
                let flags = spec["flags"].as_u64().unwrap() as u8;
                let data = unhex(spec["dataHex"].as_str().unwrap());
                assert_eq!(frame.payload[0], flags, "{name}");
                assert_eq!(&frame.payload[1..], &data[..], "{name}");
                let mut payload = vec![flags];
                payload.extend_from_slice(&data);
                encode_frame(&mut encoded, kind, stream, &payload);
            }
            FrameType::WsClose => {
                let code = spec["code"].as_u64().unwrap() as u16;
                let reason = spec["reason"].as_str().unwrap();
                assert_eq!(&frame.payload[..2], &code.to_le_bytes(), "{name}");
                assert_eq!(&frame.payload[2..], reason.as_bytes(), "{name}");
                let mut payload = code.to_le_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                encode_frame(&mut encoded, kind, stream, &payload);
            }
            FrameType::Credit => {
                let credit = spec["credit"].as_u64().unwrap() as u32;
                assert_eq!(&frame.payload[..], &credit.to_le_bytes(), "{name}");
                encode_frame(&mut encoded, kind, stream, &credit.to_le_bytes());
            }
            FrameType::End
            | FrameType::Cancel
            | FrameType::Idle
            | FrameType::Terminate
            | FrameType::StatsRequest => {
                assert!(frame.payload.is_empty(), "{name}");
                encode_frame(&mut encoded, kind, stream, &[]);
            }
        }
        assert_eq!(
            hex(&encoded),
            hex(&bytes),
            "{name}: Rust encoding differs from the vector"
        );
    }
}

//! Binary request and response heads (see the protocol table in the module docs).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::frame::{put_frame_header, FrameType, HEADER_LEN, MAX_PAYLOAD};
use super::ProtocolError;

/// Head flag: DATA frames and an END follow.
pub const FLAG_BODY: u8 = 1;

/// Most response headers a child may send.
pub const MAX_RESPONSE_HEADERS: usize = 100;
/// Longest single response header value a child may send.
pub const MAX_RESPONSE_HEADER_VALUE: usize = 8 * 1024;
/// Most bytes of response header names and values a child may send.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// What the supervisor tells a child about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Whether a body follows.
    pub has_body: bool,
    /// The HTTP method.
    pub method: String,
    /// Absolute URL the app sees as `req.url`.
    pub url: String,
    /// The client's IP address as text.
    pub address: String,
    /// Header pairs, names lower-case, values raw bytes.
    pub headers: Vec<(String, Bytes)>,
}

/// What a child answers for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Whether a body follows.
    pub has_body: bool,
    /// The status code.
    pub status: u16,
    /// Header pairs, in the order the app gave them.
    pub headers: Vec<(String, Bytes)>,
}

/// A response head the supervisor cannot pass on to a client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadResponseHead {
    /// The status is outside 100..=999.
    #[error("status {0} is not a valid HTTP status")]
    Status(u16),
    /// A header name or value has bytes HTTP does not allow.
    #[error("header {0:?} is not a valid HTTP header")]
    Header(String),
    /// Too many headers.
    #[error("{0} response headers exceed the limit of {MAX_RESPONSE_HEADERS}")]
    TooMany(usize),
    /// One value too long.
    #[error("response header {0:?} is {1} bytes, over the limit of {MAX_RESPONSE_HEADER_VALUE}")]
    ValueTooLong(String, usize),
    /// All headers together too long.
    #[error("response headers total {0} bytes, over the limit of {MAX_RESPONSE_HEADER_BYTES}")]
    TooLarge(usize),
}

/// A request as the supervisor forwards it to a child, borrowed from the client's
/// request so the head is encoded without copying it first.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// Absolute URL the app sees as `req.url`.
    pub url: &'a str,
    /// The client's IP address as text.
    pub address: &'a str,
    /// The client's headers.
    pub headers: &'a HeaderMap,
    /// Headers the supervisor sets (`x-base`, `x-forwarded-*`, …): each replaces
    /// every client header of the same name. Values are valid header bytes.
    pub overrides: &'a [(&'a HeaderName, &'a [u8])],
}

/// Appends a REQUEST frame for stream `stream`.
///
/// Fails, leaving `out` as it was, when the head would not fit the protocol's field
/// sizes.
pub fn encode_request(
    out: &mut BytesMut,
    stream: u32,
    has_body: bool,
    request: &OutgoingRequest<'_>,
) -> Result<(), ProtocolError> {
    let OutgoingRequest {
        method,
        url,
        address,
        headers,
        overrides,
    } = *request;
    if method.len() > u8::MAX as usize
        || url.len() > u16::MAX as usize
        || address.len() > u8::MAX as usize
    {
        return Err(ProtocolError::HeadTooLarge);
    }
    // One pass over the headers: the frame length and the header count are written
    // once the pairs are in.
    let start = out.len();
    out.reserve(HEADER_LEN + 8 + method.len() + url.len() + address.len() + 64 * headers.len());
    put_frame_header(out, FrameType::Request, stream, 0);
    out.put_u8(if has_body { FLAG_BODY } else { 0 });
    out.put_u8(method.len() as u8);
    out.put_slice(method.as_bytes());
    out.put_u16_le(url.len() as u16);
    out.put_slice(url.as_bytes());
    out.put_u8(address.len() as u8);
    out.put_slice(address.as_bytes());
    let count_at = out.len();
    out.put_u16_le(0);
    let count = put_request_headers(out, headers, overrides)
        .and_then(|count| u16::try_from(count).map_err(|_| ProtocolError::HeadTooLarge));
    let payload_len = out.len() - start - HEADER_LEN;
    match count {
        Ok(count) if payload_len <= MAX_PAYLOAD => {
            // The length field counts the type and stream bytes as well.
            let length = (payload_len + 5) as u32;
            out[start..start + 4].copy_from_slice(&length.to_le_bytes());
            out[count_at..count_at + 2].copy_from_slice(&count.to_le_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(ProtocolError::HeadTooLarge)
        }
    }
}

/// Appends the client's headers that no override replaces, then the overrides;
/// returns how many pairs it wrote.
fn put_request_headers(
    out: &mut BytesMut,
    headers: &HeaderMap,
    overrides: &[(&HeaderName, &[u8])],
) -> Result<usize, ProtocolError> {
    let mut count = overrides.len();
    for (name, value) in headers {
        if !overrides.iter().any(|(own, _)| *own == name) {
            put_pair(out, name.as_str().as_bytes(), value.as_bytes())?;
            count += 1;
        }
    }
    for (name, value) in overrides {
        put_pair(out, name.as_str().as_bytes(), value)?;
    }
    Ok(count)
}

/// Appends a RESPONSE frame; the supervisor never sends one, but tests and tools do.
pub fn encode_response(
    out: &mut BytesMut,
    stream: u32,
    head: &ResponseHead,
) -> Result<(), ProtocolError> {
    let mut payload = BytesMut::new();
    payload.put_u8(if head.has_body { FLAG_BODY } else { 0 });
    payload.put_u16_le(head.status);
    let count = u16::try_from(head.headers.len()).map_err(|_| ProtocolError::HeadTooLarge)?;
    payload.put_u16_le(count);
    for (name, value) in &head.headers {
        put_pair(&mut payload, name.as_bytes(), value)?;
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(ProtocolError::HeadTooLarge);
    }
    put_frame_header(out, FrameType::Response, stream, payload.len());
    out.put_slice(&payload);
    Ok(())
}

fn put_pair(out: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), ProtocolError> {
    let name_len = u16::try_from(name.len()).map_err(|_| ProtocolError::HeadTooLarge)?;
    let value_len = u16::try_from(value.len()).map_err(|_| ProtocolError::HeadTooLarge)?;
    out.put_u16_le(name_len);
    out.put_slice(name);
    out.put_u16_le(value_len);
    out.put_slice(value);
    Ok(())
}

/// Reads a REQUEST payload.
pub fn decode_request(mut payload: Bytes) -> Result<RequestHead, ProtocolError> {
    let flags = take_u8(&mut payload)?;
    let method_len = take_u8(&mut payload)? as usize;
    let method = take_text(&mut payload, method_len)?;
    let url_len = take_u16(&mut payload)? as usize;
    let url = take_text(&mut payload, url_len)?;
    let address_len = take_u8(&mut payload)? as usize;
    let address = take_text(&mut payload, address_len)?;
    let headers = take_headers(&mut payload)?;
    finish(&payload)?;
    Ok(RequestHead {
        has_body: flags & FLAG_BODY != 0,
        method,
        url,
        address,
        headers,
    })
}

/// Reads a WS_ACCEPT payload: the extra headers of the 101 answer.
pub fn decode_ws_accept(mut payload: Bytes) -> Result<Vec<(String, Bytes)>, ProtocolError> {
    let headers = take_headers(&mut payload)?;
    finish(&payload)?;
    Ok(headers)
}

/// Appends a WS_ACCEPT frame; the supervisor never sends one, but tests and tools do.
pub fn encode_ws_accept(
    out: &mut BytesMut,
    stream: u32,
    headers: &[(String, Bytes)],
) -> Result<(), ProtocolError> {
    let mut payload = BytesMut::new();
    let count = u16::try_from(headers.len()).map_err(|_| ProtocolError::HeadTooLarge)?;
    payload.put_u16_le(count);
    for (name, value) in headers {
        put_pair(&mut payload, name.as_bytes(), value)?;
    }
    put_frame_header(out, FrameType::WsAccept, stream, payload.len());
    out.put_slice(&payload);
    Ok(())
}

/// Reads a RESPONSE payload.
pub fn decode_response(mut payload: Bytes) -> Result<ResponseHead, ProtocolError> {
    let flags = take_u8(&mut payload)?;
    let status = take_u16(&mut payload)?;
    let headers = take_headers(&mut payload)?;
    finish(&payload)?;
    Ok(ResponseHead {
        has_body: flags & FLAG_BODY != 0,
        status,
        headers,
    })
}

impl ResponseHead {
    /// Checks the head against HTTP rules and the header limits, and builds the
    /// status and header map to answer the client with.
    pub fn into_http(self) -> Result<(StatusCode, HeaderMap), BadResponseHead> {
        let status =
            StatusCode::from_u16(self.status).map_err(|_| BadResponseHead::Status(self.status))?;
        if self.headers.len() > MAX_RESPONSE_HEADERS {
            return Err(BadResponseHead::TooMany(self.headers.len()));
        }
        let mut total = 0;
        // Room for the one header the supervisor adds (`x-request-id`) without regrowing.
        let mut map = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, value) in self.headers {
            if value.len() > MAX_RESPONSE_HEADER_VALUE {
                return Err(BadResponseHead::ValueTooLong(name, value.len()));
            }
            total += name.len() + value.len();
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BadResponseHead::Header(name.clone()))?;
            let header_value =
                HeaderValue::from_maybe_shared(value).map_err(|_| BadResponseHead::Header(name))?;
            map.append(header_name, header_value);
        }
        if total > MAX_RESPONSE_HEADER_BYTES {
            return Err(BadResponseHead::TooLarge(total));
        }
        Ok((status, map))
    }
}

fn take_headers(payload: &mut Bytes) -> Result<Vec<(String, Bytes)>, ProtocolError> {
    let count = take_u16(payload)? as usize;
    let mut headers = Vec::with_capacity(count.min(256));
    for _ in 0..count {
        let name_len = take_u16(payload)? as usize;
        let name = take_text(payload, name_len)?;
        let value_len = take_u16(payload)? as usize;
        let value = take_bytes(payload, value_len)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn take_u8(payload: &mut Bytes) -> Result<u8, ProtocolError> {
    if payload.remaining() < 1 {
        return Err(ProtocolError::TruncatedHead);
    }
    Ok(payload.get_u8())
}

fn take_u16(payload: &mut Bytes) -> Result<u16, ProtocolError> {
    if payload.remaining() < 2 {
        return Err(ProtocolError::TruncatedHead);
    }
    Ok(payload.get_u16_le())
}

fn take_bytes(payload: &mut Bytes, len: usize) -> Result<Bytes, ProtocolError> {
    if payload.remaining() < len {
        return Err(ProtocolError::TruncatedHead);
    }
    Ok(payload.split_to(len))
}

/// Names, methods and URLs are ASCII in practice; any byte is read as Latin-1 so
/// nothing a child sends can fail to decode.
fn take_text(payload: &mut Bytes, len: usize) -> Result<String, ProtocolError> {
    let bytes = take_bytes(payload, len)?;
    Ok(match std::str::from_utf8(&bytes) {
        Ok(text) if text.is_ascii() => text.to_owned(),
        _ => bytes.iter().map(|&byte| byte as char).collect(),
    })
}

fn finish(payload: &Bytes) -> Result<(), ProtocolError> {
    if payload.has_remaining() {
        return Err(ProtocolError::TrailingBytes(payload.remaining()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::frame::decode_frame;

    #[test]
    fn request_heads_round_trip_with_raw_header_bytes() {
        let mut headers = HeaderMap::new();
        headers.append("x-name", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let mut out = BytesMut::new();
        let request = OutgoingRequest {
            method: "POST",
            url: "http://h/p?q=1",
            address: "127.0.0.1",
            headers: &headers,
            overrides: &[],
        };
        encode_request(&mut out, 3, true, &request).unwrap();
        let frame = decode_frame(&mut out).unwrap().unwrap();
        assert_eq!(frame.stream, 3);
        let head = decode_request(frame.payload).unwrap();
        assert!(head.has_body);
        assert_eq!(head.method, "POST");
        assert_eq!(head.url, "http://h/p?q=1");
        assert_eq!(
            head.headers[0],
            ("x-name".into(), Bytes::from_static(b"caf\xe9"))
        );
        assert_eq!(head.headers.len(), 3);
    }

    #[test]
    fn overrides_replace_every_client_header_of_their_name() {
        let mut headers = HeaderMap::new();
        headers.append("x-base", HeaderValue::from_static("/forged"));
        headers.append("x-base", HeaderValue::from_static("/forged-too"));
        headers.append("accept", HeaderValue::from_static("*/*"));
        let base = HeaderName::from_static("x-base");
        let request = OutgoingRequest {
            method: "GET",
            url: "http://h/",
            address: "10.0.0.1",
            headers: &headers,
            overrides: &[(&base, b"/app@1/")],
        };
        let mut out = BytesMut::new();
        encode_request(&mut out, 1, false, &request).unwrap();
        let frame = decode_frame(&mut out).unwrap().unwrap();
        let head = decode_request(frame.payload).unwrap();
        assert_eq!(
            head.headers,
            vec![
                ("accept".to_owned(), Bytes::from_static(b"*/*")),
                ("x-base".to_owned(), Bytes::from_static(b"/app@1/")),
            ]
        );
    }

    #[test]
    fn a_head_over_the_payload_limit_is_refused_and_writes_nothing() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(&vec![b'v'; 60_000]).unwrap();
        for i in 0..20 {
            headers.append(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                value.clone(),
            );
        }
        let request = OutgoingRequest {
            method: "GET",
            url: "http://h/",
            address: "",
            headers: &headers,
            overrides: &[],
        };
        let mut out = BytesMut::from(&b"earlier frames"[..]);
        assert_eq!(
            encode_request(&mut out, 1, false, &request),
            Err(ProtocolError::HeadTooLarge)
        );
        assert_eq!(&out[..], b"earlier frames");
    }

    #[test]
    fn truncated_and_padded_heads_are_refused() {
        assert_eq!(
            decode_response(Bytes::from_static(&[1, 200])),
            Err(ProtocolError::TruncatedHead)
        );
        assert_eq!(
            decode_response(Bytes::from_static(&[0, 200, 0, 0, 0, 9])),
            Err(ProtocolError::TrailingBytes(1))
        );
    }

    #[test]
    fn response_header_limits_are_enforced() {
        let many = ResponseHead {
            has_body: false,
            status: 200,
            headers: (0..101)
                .map(|i| (format!("x-{i}"), Bytes::from_static(b"v")))
                .collect(),
        };
        assert_eq!(many.into_http(), Err(BadResponseHead::TooMany(101)));
        let long = ResponseHead {
            has_body: false,
            status: 200,
            headers: vec![("x-long".into(), Bytes::from(vec![b'a'; 9000]))],
        };
        assert!(matches!(
            long.into_http(),
            Err(BadResponseHead::ValueTooLong(_, 9000))
        ));
        let total = ResponseHead {
            has_body: false,
            status: 200,
            headers: (0..9)
                .map(|i| (format!("x-{i}"), Bytes::from(vec![b'a'; 8000])))
                .collect(),
        };
        assert!(matches!(
            total.into_http(),
            Err(BadResponseHead::TooLarge(_))
        ));
        let bad = ResponseHead {
            has_body: false,
            status: 42,
            headers: vec![],
        };
        assert_eq!(bad.into_http(), Err(BadResponseHead::Status(42)));
    }
}

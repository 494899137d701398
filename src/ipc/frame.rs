//! Frame header encoding and incremental decoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::ProtocolError;

/// Bytes before a frame's payload: length, type and stream id.
pub const HEADER_LEN: usize = 9;
/// Largest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Largest DATA payload.
pub const MAX_CHUNK: usize = 64 * 1024;
/// Send window each direction of each stream starts with.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Child greets the supervisor (JSON).
    Hello = 0x01,
    /// Child imported the app and serves requests (JSON).
    Ready = 0x02,
    /// Child could not start the app (JSON).
    Fatal = 0x03,
    /// Request head.
    Request = 0x10,
    /// Response head.
    Response = 0x11,
    /// Body bytes.
    Data = 0x12,
    /// End of a body.
    End = 0x13,
    /// Flow-control credit.
    Credit = 0x14,
    /// Abandon a stream.
    Cancel = 0x15,
    /// Handler failure (JSON).
    Error = 0x16,
    /// Health probe.
    Ping = 0x20,
    /// Health probe answer.
    Pong = 0x21,
    /// Tell the app it went idle.
    Idle = 0x22,
    /// Ask the child to run `onTerminate` and exit.
    Terminate = 0x23,
    /// Ask the child for memory figures.
    StatsRequest = 0x24,
    /// Memory figures (JSON).
    Stats = 0x25,
    /// The app accepted a WebSocket upgrade.
    WsAccept = 0x30,
    /// A WebSocket message fragment.
    WsMessage = 0x31,
    /// A WebSocket close.
    WsClose = 0x32,
}

impl FrameType {
    /// The frame type for a type byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use FrameType::*;
        Some(match byte {
            0x01 => Hello,
            0x02 => Ready,
            0x03 => Fatal,
            0x10 => Request,
            0x11 => Response,
            0x12 => Data,
            0x13 => End,
            0x14 => Credit,
            0x15 => Cancel,
            0x16 => Error,
            0x20 => Ping,
            0x21 => Pong,
            0x22 => Idle,
            0x23 => Terminate,
            0x24 => StatsRequest,
            0x25 => Stats,
            0x30 => WsAccept,
            0x31 => WsMessage,
            0x32 => WsClose,
            _ => return None,
        })
    }
}

/// One decoded frame; the payload shares the read buffer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameType,
    /// Stream id, 0 for connection-level frames.
    pub stream: u32,
    /// The payload bytes.
    pub payload: Bytes,
}

/// Appends one frame with the given payload to `out`.
pub fn encode_frame(out: &mut BytesMut, kind: FrameType, stream: u32, payload: &[u8]) {
    out.reserve(HEADER_LEN + payload.len());
    put_frame_header(out, kind, stream, payload.len());
    out.put_slice(payload);
}

/// Appends a frame header announcing `payload_len` bytes of payload to follow.
pub fn put_frame_header(out: &mut BytesMut, kind: FrameType, stream: u32, payload_len: usize) {
    // Payloads are bounded by MAX_PAYLOAD, so the length always fits in a u32.
    let length = u32::try_from(payload_len + 5).unwrap_or(u32::MAX);
    out.put_u32_le(length);
    out.put_u8(kind as u8);
    out.put_u32_le(stream);
}

/// Takes the next whole frame off the front of `buffer`, if one is there.
///
/// Leaves a partial frame in place; rejects frames that break the size rules.
pub fn decode_frame(buffer: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    if buffer.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    if length < 5 {
        return Err(ProtocolError::FrameTooShort(length));
    }
    let payload_len = length - 5;
    if payload_len > MAX_PAYLOAD {
        return Err(ProtocolError::FrameTooLong(payload_len));
    }
    if buffer.len() < 4 + length {
        buffer.reserve(4 + length - buffer.len());
        return Ok(None);
    }
    let type_byte = buffer[4];
    let kind = FrameType::from_byte(type_byte).ok_or(ProtocolError::UnknownType(type_byte))?;
    let stream = u32::from_le_bytes([buffer[5], buffer[6], buffer[7], buffer[8]]);
    buffer.advance(HEADER_LEN);
    let payload = buffer.split_to(payload_len).freeze();
    if kind == FrameType::Data && (payload.is_empty() || payload.len() > MAX_CHUNK) {
        return Err(ProtocolError::BadChunk(payload.len()));
    }
    if kind == FrameType::WsMessage && (payload.is_empty() || payload.len() > MAX_CHUNK + 1) {
        return Err(ProtocolError::BadChunk(payload.len()));
    }
    Ok(Some(Frame {
        kind,
        stream,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut whole = BytesMut::new();
        encode_frame(&mut whole, FrameType::Data, 7, b"hello");
        let mut buffer = BytesMut::from(&whole[..6]);
        assert_eq!(decode_frame(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(&whole[6..]);
        let frame = decode_frame(&mut buffer).unwrap().unwrap();
        assert_eq!(frame.stream, 7);
        assert_eq!(&frame.payload[..], b"hello");
        assert!(buffer.is_empty());
    }

    #[test]
    fn oversized_frames_are_refused_before_they_are_buffered() {
        let mut buffer = BytesMut::new();
        buffer.put_u32_le((MAX_PAYLOAD + 6) as u32);
        assert!(matches!(
            decode_frame(&mut buffer),
            Err(ProtocolError::FrameTooLong(_))
        ));
    }

    #[test]
    fn unknown_types_and_empty_chunks_are_protocol_errors() {
        let mut buffer = BytesMut::from(&[5u8, 0, 0, 0, 0x7f, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut buffer),
            Err(ProtocolError::UnknownType(0x7f))
        ));
        let mut buffer = BytesMut::new();
        encode_frame(&mut buffer, FrameType::Data, 1, b"");
        assert!(matches!(
            decode_frame(&mut buffer),
            Err(ProtocolError::BadChunk(0))
        ));
    }
}

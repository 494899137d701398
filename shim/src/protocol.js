// Wire codec for the supervisor <-> shim IPC (protocol version 1): constants,
// frame and head encoders/decoders, and the incremental frame reader. No I/O
// here, so tests (and the vectors shared with the Rust side) use it directly.
// Layout (all integers little-endian):
//   frame    = u32 length (5 + payload) | u8 type | u32 stream | payload
//   REQUEST  = u8 flags | u8 len, method | u16 len, url | u8 len, address | u16 count, headers
//   RESPONSE = u8 flags | u16 status | u16 count, headers
//   header   = u16 len, name | u16 len, value   (raw bytes, carried as latin1 strings)
//   WS_ACCEPT  = u16 count, headers
//   WS_MESSAGE = u8 flags (bit 0 binary, bit 1 last fragment) | 0..=65536 message bytes
//   WS_CLOSE   = u16 code | reason (UTF-8, at most 123 bytes)

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 9;
export const MAX_PAYLOAD = 1024 * 1024;
export const MAX_CHUNK = 64 * 1024;
export const INITIAL_WINDOW = 256 * 1024;
export const FLAG_BODY = 1;
export const WS_BINARY = 1;
export const WS_LAST = 2;
export const MAX_CLOSE_REASON = 123;

export const T = {
  HELLO: 0x01,
  READY: 0x02,
  FATAL: 0x03,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  DATA: 0x12,
  END: 0x13,
  CREDIT: 0x14,
  CANCEL: 0x15,
  ERROR: 0x16,
  PING: 0x20,
  PONG: 0x21,
  IDLE: 0x22,
  TERMINATE: 0x23,
  STATS_REQUEST: 0x24,
  STATS: 0x25,
  WS_ACCEPT: 0x30,
  WS_MESSAGE: 0x31,
  WS_CLOSE: 0x32,
};

// type code -> name, for messages and tests
export const TYPE_NAMES = {};
for (const name in T) TYPE_NAMES[T[name]] = name;

// A frame or payload that breaks the protocol.
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

// Writes the 9-byte frame header at `off`.
export function writeHeader(buf, off, type, stream, payloadLength) {
  buf.writeUInt32LE(payloadLength + 5, off);
  buf[off + 4] = type;
  buf.writeUInt32LE(stream, off + 5);
}

// Just the 9-byte header (the payload is queued separately, e.g. for DATA).
export function header(type, stream, payloadLength) {
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(buf, 0, type, stream, payloadLength);
  return buf;
}

// A whole frame with an optional payload copied in.
export function frame(type, stream, payload) {
  const n = payload ? payload.length : 0;
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, type, stream, n);
  if (n) buf.set(payload, HEADER_SIZE);
  return buf;
}

// A frame whose payload is compact JSON (HELLO, READY, FATAL, ERROR, STATS).
export function jsonFrame(type, stream, value) {
  const text = JSON.stringify(value);
  const n = Buffer.byteLength(text);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, type, stream, n);
  buf.utf8Write(text, HEADER_SIZE, n);
  return buf;
}

export function creditFrame(stream, credit) {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 4);
  writeHeader(buf, 0, T.CREDIT, stream, 4);
  buf.writeUInt32LE(credit, HEADER_SIZE);
  return buf;
}

// Byte size of a header list given as [[name, value], ...] (latin1: one byte per char).
function headersSize(headers) {
  let size = 2;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    if (h[0].length > 0xffff || h[1].length > 0xffff) {
      throw new RangeError(`header ${h[0].slice(0, 64)} is longer than 65535 bytes`);
    }
    size += 4 + h[0].length + h[1].length;
  }
  if (headers.length > 0xffff) throw new RangeError("more than 65535 headers");
  return size;
}

function writeHeaders(buf, off, headers) {
  buf.writeUInt16LE(headers.length, off);
  off += 2;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    buf.writeUInt16LE(name.length, off);
    off += 2;
    off += buf.latin1Write(name, off, name.length);
    buf.writeUInt16LE(value.length, off);
    off += 2;
    off += buf.latin1Write(value, off, value.length);
  }
  return off;
}

// Whole RESPONSE frame: one allocation for header + head.
export function responseFrame(stream, status, headers, body) {
  const n = 3 + headersSize(headers);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, T.RESPONSE, stream, n);
  buf[HEADER_SIZE] = body ? FLAG_BODY : 0;
  buf.writeUInt16LE(status, HEADER_SIZE + 1);
  writeHeaders(buf, HEADER_SIZE + 3, headers);
  return buf;
}

// RESPONSE, one DATA holding the whole body and END, in one buffer: the common
// small in-memory answer costs one allocation and one queue entry. The body is
// bytes, or a string written as UTF-8 (`size` is then its encoded length).
export function wholeResponseFrames(stream, status, headers, body, size = body.length) {
  const n = 3 + headersSize(headers);
  const dataAt = HEADER_SIZE + n;
  const endAt = dataAt + HEADER_SIZE + size;
  const buf = Buffer.allocUnsafe(endAt + HEADER_SIZE);
  writeHeader(buf, 0, T.RESPONSE, stream, n);
  buf[HEADER_SIZE] = FLAG_BODY;
  buf.writeUInt16LE(status, HEADER_SIZE + 1);
  writeHeaders(buf, HEADER_SIZE + 3, headers);
  writeHeader(buf, dataAt, T.DATA, stream, size);
  if (typeof body === "string") buf.utf8Write(body, dataAt + HEADER_SIZE, size);
  else buf.set(body, dataAt + HEADER_SIZE);
  writeHeader(buf, endAt, T.END, stream, 0);
  return buf;
}

// Whole WS_ACCEPT frame: the extra headers of the 101 response.
export function wsAcceptFrame(stream, headers) {
  const n = headersSize(headers);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, T.WS_ACCEPT, stream, n);
  writeHeaders(buf, HEADER_SIZE, headers);
  return buf;
}

// One WS_MESSAGE fragment carrying bytes[start, end) (copied, so the caller may reuse them).
export function wsMessageFrame(stream, flags, bytes, start, end) {
  const n = end - start;
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 1 + n);
  writeHeader(buf, 0, T.WS_MESSAGE, stream, n + 1);
  buf[HEADER_SIZE] = flags;
  if (n) buf.set(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end), HEADER_SIZE + 1);
  return buf;
}

// A whole text message in one WS_MESSAGE frame, encoded straight from the string.
export function wsTextFrame(stream, text, byteLength) {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 1 + byteLength);
  writeHeader(buf, 0, T.WS_MESSAGE, stream, byteLength + 1);
  buf[HEADER_SIZE] = WS_LAST;
  if (byteLength) buf.utf8Write(text, HEADER_SIZE + 1, byteLength);
  return buf;
}

// WS_CLOSE with a code and the reason's UTF-8 bytes (at most 123 of them).
export function wsCloseFrame(stream, code, reason) {
  const n = reason ? reason.length : 0;
  if (n > MAX_CLOSE_REASON) throw new RangeError("close reason longer than 123 bytes");
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 2 + n);
  writeHeader(buf, 0, T.WS_CLOSE, stream, n + 2);
  buf.writeUInt16LE(code, HEADER_SIZE);
  if (n) buf.set(reason, HEADER_SIZE + 2);
  return buf;
}

// Whole REQUEST frame (the supervisor's side; used by tests and vectors).
export function requestFrame(stream, head) {
  const { method, url, address = "" } = head;
  if (method.length > 0xff || address.length > 0xff || url.length > 0xffff) {
    throw new RangeError("request head field too long");
  }
  const n = 1 + 1 + method.length + 2 + url.length + 1 + address.length + headersSize(head.headers);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + n);
  writeHeader(buf, 0, T.REQUEST, stream, n);
  let off = HEADER_SIZE;
  buf[off++] = head.body ? FLAG_BODY : 0;
  buf[off++] = method.length;
  off += buf.latin1Write(method, off, method.length);
  buf.writeUInt16LE(url.length, off);
  off += 2;
  off += buf.latin1Write(url, off, url.length);
  buf[off++] = address.length;
  off += buf.latin1Write(address, off, address.length);
  writeHeaders(buf, off, head.headers);
  return buf;
}

// Bounds-checked cursor over a payload; any overrun is a ProtocolError.
class Cursor {
  constructor(buf, what) {
    this.buf = buf;
    this.off = 0;
    this.what = what;
    this.text = null; // the whole payload as latin1, made on the first string
  }
  need(n) {
    if (this.off + n > this.buf.length) throw new ProtocolError(`truncated ${this.what} head`);
  }
  u8() {
    this.need(1);
    return this.buf[this.off++];
  }
  u16() {
    this.need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  // The next n bytes as a string. With `slot`, a field that has the same bytes as the
  // last head's field in that slot gives back that head's string.
  str(n, slot = RECENT_SLOTS) {
    this.need(n);
    // Substrings of one latin1 copy of the payload: a fraction of the cost of a
    // latin1Slice per field.
    if (this.text === null) this.text = this.buf.latin1Slice(0, this.buf.length);
    const off = this.off;
    this.off += n;
    if (slot >= RECENT_SLOTS) return this.text.substring(off, off + n);
    const last = recent[slot];
    if (last.length === n && this.text.startsWith(last, off)) return last;
    return (recent[slot] = this.text.substring(off, off + n));
  }
  headers(firstSlot = RECENT_SLOTS) {
    const count = this.u16();
    const out = new Array(count);
    for (let i = 0, slot = firstSlot; i < count; i++, slot += 2) {
      const name = this.str(this.u16(), slot);
      out[i] = [name, this.str(this.u16(), slot + 1)];
    }
    return out;
  }
  done() {
    if (this.off !== this.buf.length) throw new ProtocolError(`trailing bytes after ${this.what} head`);
  }
}

// The strings of the last request head, by field: method, url, address, then each
// header's name and value. Most of them repeat from one request to the next (the
// header names, host, user agent, the forwarding headers), and a string Bun has seen
// before costs it far less to store in a Request than a fresh substring, which it
// copies first and later collects. Eight headers cost a child about 2.1 us per request
// as fresh substrings and 0.9 us as repeated strings.
const RECENT_SLOTS = 3 + 2 * 32;
const recent = new Array(RECENT_SLOTS).fill("");

// REQUEST payload -> {body, method, url, address, headers}
export function decodeRequestHead(payload) {
  const c = new Cursor(payload, "request");
  const flags = c.u8();
  const method = c.str(c.u8(), 0);
  const url = c.str(c.u16(), 1);
  const address = c.str(c.u8(), 2);
  const headers = c.headers(3);
  c.done();
  if (method.length === 0) throw new ProtocolError("empty request method");
  return { body: (flags & FLAG_BODY) !== 0, method, url, address, headers };
}

// RESPONSE payload -> {body, status, headers}
export function decodeResponseHead(payload) {
  const c = new Cursor(payload, "response");
  const flags = c.u8();
  const status = c.u16();
  const headers = c.headers();
  c.done();
  return { body: (flags & FLAG_BODY) !== 0, status, headers };
}

// WS_ACCEPT payload -> [[name, value], ...]
export function decodeWsAccept(payload) {
  const c = new Cursor(payload, "WS_ACCEPT");
  const headers = c.headers();
  c.done();
  return headers;
}

// WS_CLOSE payload -> {code, reason}
export function decodeWsClose(payload) {
  if (payload.length < 2) throw new ProtocolError(`WS_CLOSE payload of ${payload.length} bytes`);
  if (payload.length - 2 > MAX_CLOSE_REASON) throw new ProtocolError("WS_CLOSE reason longer than 123 bytes");
  return { code: payload.readUInt16LE(0), reason: payload.toString("utf8", 2) };
}

// Splits one complete frame buffer into {type, stream, payload}; for tests.
export function decodeFrame(buf) {
  if (buf.length < HEADER_SIZE) throw new ProtocolError("short frame");
  const length = buf.readUInt32LE(0);
  if (length < 5 || length + 4 !== buf.length) throw new ProtocolError("bad frame length");
  return { type: buf[4], stream: buf.readUInt32LE(5), payload: buf.subarray(HEADER_SIZE) };
}

// Incoming frame parser. Frames are cut out of each data chunk in place
// (subarray, no copy); only a frame that spans chunks is assembled, into one
// buffer allocated from its length.
export class FrameReader {
  // onFrame(type, stream, payload) is called for each complete frame.
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.part = null; // frame being assembled (or the first bytes of a split header)
    this.fill = 0;
  }

  // Validated total frame size from a u32 length field.
  static frameSize(length) {
    if (length < 5 || length - 5 > MAX_PAYLOAD) {
      throw new ProtocolError(`bad frame length ${length}`);
    }
    return length + 4;
  }

  feed(chunk) {
    let off = 0;
    const n = chunk.length;
    if (this.part !== null) {
      off = this.continuePart(chunk);
      if (this.part !== null) return;
    }
    while (n - off >= HEADER_SIZE) {
      const size = FrameReader.frameSize(chunk.readUInt32LE(off));
      if (n - off < size) break;
      this.onFrame(chunk[off + 4], chunk.readUInt32LE(off + 5), chunk.subarray(off + HEADER_SIZE, off + size));
      off += size;
    }
    if (off < n) this.startPart(chunk, off);
  }

  // Begins assembling from chunk[off..]; the frame is incomplete there.
  startPart(chunk, off) {
    const rest = chunk.length - off;
    if (rest >= 4) {
      this.part = Buffer.allocUnsafe(FrameReader.frameSize(chunk.readUInt32LE(off)));
    } else {
      this.part = Buffer.allocUnsafe(4); // not even the length yet
    }
    chunk.copy(this.part, 0, off);
    this.fill = rest;
  }

  // Adds the start of `chunk` to the frame being assembled; returns bytes used.
  continuePart(chunk) {
    let used = 0;
    if (this.part.length === 4 && this.fill < 4) {
      // Complete the length field, then grow the buffer to the whole frame.
      used = Math.min(4 - this.fill, chunk.length);
      chunk.copy(this.part, this.fill, 0, used);
      this.fill += used;
      if (this.fill < 4) return used;
      const whole = Buffer.allocUnsafe(FrameReader.frameSize(this.part.readUInt32LE(0)));
      this.part.copy(whole, 0, 0, 4);
      this.part = whole;
    }
    const take = Math.min(this.part.length - this.fill, chunk.length - used);
    chunk.copy(this.part, this.fill, used, used + take);
    this.fill += take;
    used += take;
    if (this.fill === this.part.length) {
      const f = this.part;
      this.part = null;
      this.fill = 0;
      this.onFrame(f[4], f.readUInt32LE(5), f.subarray(HEADER_SIZE));
    }
    return used;
  }
}

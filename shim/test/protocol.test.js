// Codec unit tests: round-trips, the shared vectors, malformed input, and the
// frame reader's handling of frames split across chunks.
import { describe, expect, test } from "bun:test";
import vectors from "./vectors.json";
import { decodeVector, encodeVector } from "./vector-codec.js";
import {
  FLAG_BODY,
  HEADER_SIZE,
  MAX_PAYLOAD,
  ProtocolError,
  T,
  creditFrame,
  decodeFrame,
  decodeRequestHead,
  decodeResponseHead,
  decodeWsAccept,
  decodeWsClose,
  FrameReader,
  frame,
  jsonFrame,
  requestFrame,
  responseFrame,
  wholeResponseFrames,
  wsAcceptFrame,
  wsCloseFrame,
  wsMessageFrame,
  wsTextFrame,
  WS_BINARY,
  WS_LAST,
} from "../src/protocol.js";

describe("vectors.json", () => {
  test("has at least 15 vectors covering every frame type", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(15);
    const seen = new Set(vectors.map((v) => v.frame.type));
    for (const name of Object.keys(T)) expect(seen.has(name)).toBe(true);
  });

  for (const v of vectors) {
    test(`encodes and decodes: ${v.name}`, () => {
      expect(encodeVector(v.frame).toString("hex")).toBe(v.hex);
      expect(decodeVector(Buffer.from(v.hex, "hex"))).toEqual(v.frame);
    });
  }

  test("a few vectors checked by hand against the spec", () => {
    const byName = Object.fromEntries(vectors.map((v) => [v.name, v.hex]));
    // length 10 = 5 + flags(1) + status(2) + count(2); type 0x11; stream 1; status 200
    expect(byName["response 200 no headers no body"]).toBe("0a000000" + "11" + "01000000" + "00" + "c800" + "0000");
    // CREDIT 65536 on stream 2
    expect(byName["credit 64 KiB"]).toBe("09000000" + "14" + "02000000" + "00000100");
    // PING echoes 8 bytes on stream 0
    expect(byName["ping"]).toBe("0d000000" + "20" + "00000000" + "0102030405060708");
    // the latin1 header value carries byte 0xe9 for "é"
    expect(byName["request latin1 header and empty address"]).toContain("0400636166e9");
    // WS_ACCEPT with no headers is just the u16 count
    expect(byName["ws accept no headers"]).toBe("07000000" + "30" + "01000000" + "0000");
    // WS_MESSAGE: flags 0x03 = binary + last, then the data
    expect(byName["ws message binary last fragment"]).toBe("07000000" + "31" + "06000000" + "03" + "fe");
    // WS_CLOSE 1000 without a reason; 4001 with a UTF-8 reason ("é" is c3 a9 here, not latin1)
    expect(byName["ws close normal"]).toBe("07000000" + "32" + "06000000" + "e803");
    expect(byName["ws close with utf8 reason"]).toStartWith("16000000" + "32" + "07000000" + "a10f");
    expect(byName["ws close with utf8 reason"]).toContain("c3a974c3a9");
  });
});

describe("heads", () => {
  test("request head round-trips raw header bytes", () => {
    const head = {
      body: true,
      method: "PATCH",
      url: "http://h.test/a?b=c",
      address: "10.0.0.1",
      headers: [
        ["x-bytes", "\u0000\u0080\u00ff"],
        ["set-cookie", "a"],
        ["set-cookie", "b"],
      ],
    };
    const f = decodeFrame(requestFrame(9, head));
    expect(f.type).toBe(T.REQUEST);
    expect(f.stream).toBe(9);
    expect(decodeRequestHead(f.payload)).toEqual(head);
  });

  test("request heads decode right whatever the heads before them held", () => {
    // Fields of one length in one place, with the same, other, reordered and fewer
    // bytes than the head before: each head must come back exactly as sent.
    const heads = [
      { method: "GET", url: "http://h.test/a", address: "10.0.0.1", headers: [["host", "h.test"], ["x-id", "0001"], ["accept", "*/*"]] },
      { method: "GET", url: "http://h.test/a", address: "10.0.0.1", headers: [["host", "h.test"], ["x-id", "0002"], ["accept", "*/*"]] },
      { method: "PUT", url: "http://h.test/b", address: "10.0.0.2", headers: [["x-id", "0002"], ["host", "h.test"], ["accept", "*/*"]] },
      { method: "GET", url: "http://h.test/a", address: "", headers: [["host", "h.tesT"]] },
      { method: "GET", url: "http://h.test/a", address: "10.0.0.1", headers: [["host", "h.test"], ["x-id", ""], ["accept", "*/*"], ["a", "b"]] },
      { method: "GET", url: "http://h.test/a", address: "10.0.0.1", headers: [["host", "h.test"], ["x-id", ""], ["accept", "*/*"], ["a", "b"]] },
    ];
    for (const sent of heads) {
      const head = { body: false, ...sent };
      expect(decodeRequestHead(decodeFrame(requestFrame(1, head)).payload)).toEqual(head);
    }
  });

  test("response head round-trips", () => {
    const f = decodeFrame(responseFrame(3, 418, [["a", "b"], ["c", ""]], true));
    expect(f.payload[0]).toBe(FLAG_BODY);
    expect(decodeResponseHead(f.payload)).toEqual({ body: true, status: 418, headers: [["a", "b"], ["c", ""]] });
  });

  test("a whole small response is the RESPONSE, DATA and END frames back to back", () => {
    const headers = [["content-type", "text/plain"]];
    const bytes = Buffer.from("hello");
    const apart = Buffer.concat([
      responseFrame(7, 201, headers, true),
      frame(T.DATA, 7, bytes),
      frame(T.END, 7),
    ]);
    expect(wholeResponseFrames(7, 201, headers, bytes).equals(apart)).toBe(true);
  });

  test("truncated or padded heads are protocol errors", () => {
    const payload = decodeFrame(requestFrame(1, { body: false, method: "GET", url: "http://x/", address: "", headers: [["a", "b"]] })).payload;
    for (let n = 0; n < payload.length; n++) {
      expect(() => decodeRequestHead(payload.subarray(0, n))).toThrow(ProtocolError);
    }
    expect(() => decodeRequestHead(Buffer.concat([payload, Buffer.from([0])]))).toThrow(ProtocolError);
    expect(() => decodeResponseHead(Buffer.from([0, 200]))).toThrow(ProtocolError);
  });

  test("header values longer than u16 cannot be encoded", () => {
    expect(() => responseFrame(1, 200, [["x", "a".repeat(70000)]], false)).toThrow(RangeError);
  });

  test("json, credit and empty frames", () => {
    expect(decodeFrame(jsonFrame(T.ERROR, 5, { message: "é" })).payload.toString()).toBe('{"message":"é"}');
    expect(decodeFrame(creditFrame(5, 123456)).payload.readUInt32LE(0)).toBe(123456);
    expect(frame(T.END, 5).length).toBe(HEADER_SIZE);
  });
});

describe("WebSocket frames", () => {
  test("WS_ACCEPT headers round-trip; a truncated or padded payload is a protocol error", () => {
    const headers = [["sec-websocket-protocol", "chat"], ["x-raw", "\u00ff\u00e9"], ["set-cookie", "a"], ["set-cookie", "b"]];
    const f = decodeFrame(wsAcceptFrame(4, headers));
    expect([f.type, f.stream]).toEqual([T.WS_ACCEPT, 4]);
    expect(decodeWsAccept(f.payload)).toEqual(headers);
    for (let n = 0; n < f.payload.length; n++) expect(() => decodeWsAccept(f.payload.subarray(0, n))).toThrow(ProtocolError);
    expect(() => decodeWsAccept(Buffer.concat([f.payload, Buffer.from([0])]))).toThrow(ProtocolError);
  });

  test("WS_MESSAGE copies the bytes it is given", () => {
    const data = Buffer.from("abcdef");
    const buf = wsMessageFrame(2, WS_BINARY, data, 1, 4);
    data.fill(0);
    const f = decodeFrame(buf);
    expect([f.type, f.stream, f.payload[0]]).toEqual([T.WS_MESSAGE, 2, WS_BINARY]);
    expect(f.payload.subarray(1).toString()).toBe("bcd");
    expect(decodeFrame(wsMessageFrame(2, WS_LAST, data, 0, 0)).payload).toEqual(Buffer.from([WS_LAST]));
  });

  test("a text frame built from a string equals one built from its bytes", () => {
    const text = "héllo 😀";
    const bytes = Buffer.from(text);
    expect(wsTextFrame(9, text, bytes.length)).toEqual(wsMessageFrame(9, WS_LAST, bytes, 0, bytes.length));
    expect(wsTextFrame(9, "", 0)).toEqual(wsMessageFrame(9, WS_LAST, Buffer.alloc(0), 0, 0));
  });

  test("WS_CLOSE: code and UTF-8 reason; short payloads and long reasons are refused", () => {
    const f = decodeFrame(wsCloseFrame(3, 4000, Buffer.from("bye é")));
    expect(decodeWsClose(f.payload)).toEqual({ code: 4000, reason: "bye é" });
    expect(decodeWsClose(Buffer.from([0xe8, 0x03]))).toEqual({ code: 1000, reason: "" });
    expect(() => decodeWsClose(Buffer.alloc(0))).toThrow(ProtocolError);
    expect(() => decodeWsClose(Buffer.alloc(1))).toThrow(ProtocolError);
    expect(decodeWsClose(Buffer.alloc(125)).reason.length).toBe(123);
    expect(() => decodeWsClose(Buffer.alloc(126))).toThrow(ProtocolError);
    expect(() => wsCloseFrame(3, 1000, Buffer.alloc(124))).toThrow(RangeError);
  });
});

describe("FrameReader", () => {
  const stream = Buffer.concat([
    jsonFrame(T.HELLO, 0, { protocol: 1 }),
    frame(T.DATA, 1, Buffer.alloc(70000 - 65536 + 100, 7)),
    frame(T.END, 1),
    frame(T.PING, 0, Buffer.from("12345678")),
    requestFrame(2, { body: false, method: "GET", url: "http://x/", address: "", headers: [] }),
  ]);

  function collect(chunks) {
    const out = [];
    const r = new FrameReader((type, id, payload) => out.push([type, id, Buffer.from(payload).toString("hex")]));
    for (const c of chunks) r.feed(c);
    return out;
  }

  const whole = collect([stream]);

  test("parses whole frames in one chunk", () => {
    expect(whole.map((f) => f[0])).toEqual([T.HELLO, T.DATA, T.END, T.PING, T.REQUEST]);
  });

  test("same frames when fed one byte at a time", () => {
    const bytes = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    expect(collect(bytes)).toEqual(whole);
  });

  test("same frames for every two-way split", () => {
    for (let cut = 1; cut < stream.length; cut += 7) {
      expect(collect([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(whole);
    }
  });

  test("rejects bad lengths", () => {
    const tooShort = Buffer.from("04000000100100000000", "hex");
    expect(() => collect([tooShort])).toThrow(ProtocolError);
    const tooLong = Buffer.alloc(9);
    tooLong.writeUInt32LE(MAX_PAYLOAD + 6, 0);
    expect(() => collect([tooLong])).toThrow(ProtocolError);
  });
});

// Maps the JSON frame descriptions of vectors.json to bytes and back, using
// the shim's codec. Shared by gen-vectors.js and protocol.test.js.
import {
  T,
  TYPE_NAMES,
  creditFrame,
  decodeFrame,
  decodeRequestHead,
  decodeResponseHead,
  decodeWsAccept,
  decodeWsClose,
  frame,
  jsonFrame,
  requestFrame,
  responseFrame,
  wsAcceptFrame,
  wsCloseFrame,
  wsMessageFrame,
} from "../src/protocol.js";

const JSON_TYPES = new Set(["HELLO", "READY", "FATAL", "ERROR", "STATS"]);
const BYTES_TYPES = new Set(["DATA", "PING", "PONG"]);

export function encodeVector(f) {
  const type = T[f.type];
  if (type === undefined) throw new Error(`unknown type ${f.type}`);
  if (JSON_TYPES.has(f.type)) return jsonFrame(type, f.stream, f.json);
  if (BYTES_TYPES.has(f.type)) return frame(type, f.stream, Buffer.from(f.dataHex, "hex"));
  if (f.type === "REQUEST") return requestFrame(f.stream, f.head);
  if (f.type === "RESPONSE") return responseFrame(f.stream, f.head.status, f.head.headers, f.head.body);
  if (f.type === "CREDIT") return creditFrame(f.stream, f.credit);
  if (f.type === "WS_ACCEPT") return wsAcceptFrame(f.stream, f.headers);
  if (f.type === "WS_MESSAGE") {
    const data = Buffer.from(f.dataHex, "hex");
    return wsMessageFrame(f.stream, f.flags, data, 0, data.length);
  }
  if (f.type === "WS_CLOSE") return wsCloseFrame(f.stream, f.code, Buffer.from(f.reason, "utf8"));
  return frame(type, f.stream);
}

export function decodeVector(buf) {
  const { type, stream, payload } = decodeFrame(buf);
  const name = TYPE_NAMES[type];
  const f = { type: name, stream };
  if (JSON_TYPES.has(name)) f.json = JSON.parse(payload.toString("utf8"));
  else if (BYTES_TYPES.has(name)) f.dataHex = payload.toString("hex");
  else if (name === "REQUEST") f.head = decodeRequestHead(payload);
  else if (name === "RESPONSE") f.head = decodeResponseHead(payload);
  else if (name === "CREDIT") f.credit = payload.readUInt32LE(0);
  else if (name === "WS_ACCEPT") f.headers = decodeWsAccept(payload);
  else if (name === "WS_MESSAGE") {
    f.flags = payload[0];
    f.dataHex = payload.subarray(1).toString("hex");
  } else if (name === "WS_CLOSE") Object.assign(f, decodeWsClose(payload));
  return f;
}

// Incoming frame parser. Frames are cut out of each data chunk in place
// (subarray, no copy); only a frame that spans chunks is assembled, into one
// buffer allocated from its length.

import { HEADER_SIZE, MAX_PAYLOAD, ProtocolError } from "./protocol.js";

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

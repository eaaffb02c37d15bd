// 共有メモ without the page: one participant's Yjs document kept in step with the room's memo over the room
// channel (memo.sync / memo.awareness frames carrying base64 y-protocols messages; see docs/protocol.md).
// memo.js binds it to the textarea; tests/interop/memo_client.mjs drives the same code from Node.
//
// What keeps every side's text the same:
// - edits are made on code point boundaries (never between the halves of a surrogate pair) and lone
//   surrogates become U+FFFD before they reach Yjs, so what this side shows is exactly what it sends;
// - nothing is sent over a frame's size: a larger update goes out as several that fit, in an order the
//   server can take one by one (a long paste arrives whole);
// - after (re)connecting, local edits wait until this side has answered the server's step 1 (its step 2 carries
//   them), so the server never gets an update that starts past what it has;
// - an update the server refuses leaves this side out of step: after memo_out_of_step the server's step 1
//   follows and the answer brings what it lacks; after memo_broken_text / memo_not_text this side starts
//   afresh from the server's memo (a new Y.Doc) and says why.
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as awarenessProtocol from "y-protocols/awareness";
import { ErrorCode, MAX_FRAME_BYTES } from "./protocol.js";

export const REMOTE = "remote"; // transaction origin of changes that came from the server
export const INPUT = "input"; // transaction origin of changes typed on this side
export const TEXT_NAME = "memo";
const STEP1 = 0;
const STEP2 = 1;
const UPDATE = 2;
// The largest update one memo.sync frame carries: {"type":"memo.sync","data":"<base64>"} within the frame
// limit, base64 of the kind byte, a length of up to 4 bytes and the update.
export const MAX_UPDATE_BYTES = Math.floor((MAX_FRAME_BYTES - 64) / 4) * 3 - 5;

export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const isHigh = (unit) => unit >= 0xd800 && unit <= 0xdbff;
const isLow = (unit) => unit >= 0xdc00 && unit <= 0xdfff;

/** ``text`` with each lone surrogate replaced by U+FFFD (what TextEncoder would send in its place). */
export function wellFormed(text) {
  if (typeof text.toWellFormed === "function") return text.toWellFormed();
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/**
 * The single edit that turns ``before`` into ``after``: [index, deleted count, inserted text], in UTF-16 code
 * units as Y.Text counts, but never starting or ending between the halves of a surrogate pair (backspacing
 * the first of 😀😁 deletes 😀, not the half each emoji shares).
 */
export function diff(before, after) {
  const shorter = Math.min(before.length, after.length);
  let start = 0;
  while (start < shorter && before.charCodeAt(start) === after.charCodeAt(start)) start += 1;
  if (start > 0 && isHigh(before.charCodeAt(start - 1))) start -= 1;
  let end = 0;
  while (end < shorter - start
    && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end += 1;
  if (end > 0 && isLow(before.charCodeAt(before.length - end))) end -= 1;
  return [start, before.length - start - end, after.slice(start, after.length - end)];
}

/** Where index ``pos`` of the old text ends up after a Y.Text ``delta`` (retain/insert/delete ops). */
export function movedIndex(pos, delta) {
  let old = 0;
  let shift = 0;
  for (const op of delta) {
    if (old > pos) break;
    if (op.retain) old += op.retain;
    else if (op.insert) { if (old < pos) shift += op.insert.length; }
    else if (op.delete) { if (old < pos) shift -= Math.min(op.delete, pos - old); old += op.delete; }
  }
  return pos + shift;
}

function structBytes(struct) {
  const encoder = new Y.UpdateEncoderV1();
  struct.write(encoder, 0);
  return encoding.length(encoder.restEncoder);
}

/** ``item`` (a decoded string item) as items of at most ``budget`` UTF-8 bytes each, cut between code points. */
function sliceString(item, budget) {
  const { client, clock } = item.id;
  const str = item.content.str;
  const pieces = [];
  let start = 0;
  while (start < str.length) {
    let end = start;
    let bytes = 0;
    while (end < str.length) {
      const unit = str.charCodeAt(end);
      const width = isHigh(unit) ? 2 : 1;
      const size = unit < 0x80 ? 1 : unit < 0x800 ? 2 : width === 2 ? 4 : 3;
      if (bytes + size > budget && end > start) break;
      bytes += size;
      end += width;
    }
    const origin = start === 0 ? item.origin : Y.createID(client, clock + start - 1);
    pieces.push(new Y.Item(Y.createID(client, clock + start), null, origin, null, item.rightOrigin,
      item.parent, item.parentSub, new Y.ContentString(str.slice(start, end))));
    start = end;
  }
  return pieces;
}

function encodePiece(client, structs, deletes) {
  const encoder = new Y.UpdateEncoderV1();
  const rest = encoder.restEncoder;
  if (structs.length) {
    encoding.writeVarUint(rest, 1);
    encoding.writeVarUint(rest, structs.length);
    encoder.writeClient(client);
    encoding.writeVarUint(rest, structs[0].id.clock);
    for (const struct of structs) struct.write(encoder, 0);
  } else {
    encoding.writeVarUint(rest, 0);
  }
  const byClient = new Map();
  for (const [owner, item] of deletes) {
    if (!byClient.has(owner)) byClient.set(owner, []);
    byClient.get(owner).push(item);
  }
  encoding.writeVarUint(rest, byClient.size);
  for (const [owner, items] of byClient) {
    encoder.resetDsCurVal();
    encoding.writeVarUint(rest, owner);
    encoding.writeVarUint(rest, items.length);
    for (const item of items) { encoder.writeDsClock(item.clock); encoder.writeDsLen(item.len); }
  }
  return encoder.toUint8Array();
}

/**
 * ``update`` as updates of at most ``maxBytes`` each that, applied one after the other, make the same change.
 * Items come before what refers to them (the server refuses an update it would have to keep pending); long
 * strings are cut between code points; deletions come last.
 */
export function splitUpdate(update, maxBytes = MAX_UPDATE_BYTES) {
  if (update.length <= maxBytes) return [update];
  const budget = maxBytes - 64;
  const { structs, ds } = Y.decodeUpdate(update);
  const queues = new Map();
  const ranges = new Map();
  for (const struct of structs) {
    const { client, clock } = struct.id;
    if (!queues.has(client)) { queues.set(client, []); ranges.set(client, [clock, clock]); }
    queues.get(client).push(struct);
    ranges.get(client)[1] = clock + struct.length;
  }
  const done = new Map([...ranges].map(([client, [start]]) => [client, start]));
  const there = (id) => {
    const range = id && ranges.get(id.client);
    return !range || id.clock < range[0] || id.clock >= range[1] || id.clock < done.get(id.client);
  };
  const ready = (struct) => !(struct instanceof Y.Item)
    || (there(struct.origin) && there(struct.rightOrigin) && (!(struct.parent instanceof Y.ID) || there(struct.parent)));
  const order = []; // runs of one client's structs, in an order the server can integrate one by one
  for (let progress = true; progress;) {
    progress = false;
    for (const [client, queue] of queues) {
      const run = [];
      while (queue.length && ready(queue[0])) {
        const struct = queue.shift();
        run.push(struct);
        done.set(client, struct.id.clock + struct.length);
      }
      if (run.length) { order.push([client, run]); progress = true; }
    }
  }
  for (const [client, queue] of queues) if (queue.length) order.push([client, queue]); // refers to nothing sent
  const pieces = [];
  for (const [client, run] of order) {
    let piece = [];
    let size = 0;
    const flush = () => { if (piece.length) pieces.push(encodePiece(client, piece, [])); piece = []; size = 0; };
    for (const struct of run) {
      const bytes = structBytes(struct);
      const parts = bytes > budget && struct instanceof Y.Item && struct.content instanceof Y.ContentString
        ? sliceString(struct, budget) : [struct];
      for (const part of parts) {
        const partBytes = parts.length === 1 ? bytes : structBytes(part);
        if (size + partBytes > budget) flush();
        piece.push(part);
        size += partBytes;
      }
    }
    flush();
  }
  let deletes = [];
  for (const [client, items] of ds.clients) {
    for (const item of items) {
      deletes.push([client, item]);
      if (deletes.length >= budget / 24) { pieces.push(encodePiece(0, [], deletes)); deletes = []; }
    }
  }
  if (deletes.length) pieces.push(encodePiece(0, [], deletes));
  return pieces;
}

/**
 * One participant's memo. ``send(frame)`` puts a frame on the room channel (dropped while it is closed);
 * ``hooks``: ``text(event)`` for every change of the text (and ``reset()`` when the document is replaced),
 * ``awareness(changes, origin)``, ``refused(message)`` when the server refused this side's edit.
 */
export class MemoSync {
  constructor(send, role, hooks = {}) {
    this.sendFrame = send;
    this.role = role;
    this.hooks = hooks;
    this.synced = false;
    this.start();
  }

  start() {
    this.doc = new Y.Doc();
    this.text = this.doc.getText(TEXT_NAME);
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    this.awareness.setLocalStateField("role", this.role);
    this.text.observe((event) => this.hooks.text?.(event));
    this.doc.on("update", (update, origin) => {
      // Local edits wait while out of step: the step 2 that answers the server's step 1 carries them.
      if (origin !== REMOTE && this.synced) this.sendUpdate(UPDATE, update);
    });
    const awareness = this.awareness;
    awareness.on("update", (changes, origin) => {
      if (origin !== REMOTE) this.sendAwareness(awareness);
      this.hooks.awareness?.(changes, origin);
    });
  }

  sendAwareness(awareness = this.awareness) {
    const update = awarenessProtocol.encodeAwarenessUpdate(awareness, [awareness.clientID]);
    this.sendFrame({ type: "memo.awareness", data: toBase64(update) });
  }

  sendSync(kind, payload) {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, kind);
    encoding.writeVarUint8Array(encoder, payload);
    this.sendFrame({ type: "memo.sync", data: toBase64(encoding.toUint8Array(encoder)) });
  }

  sendUpdate(kind, update) {
    const pieces = splitUpdate(update);
    for (const piece of pieces) this.sendSync(pieces.length === 1 ? kind : UPDATE, piece);
  }

  /** The channel is open again (a welcome): tell the server what this side has, and where its caret is. */
  connected() {
    this.synced = false;
    this.sendSync(STEP1, Y.encodeStateVector(this.doc));
    this.sendAwareness();
  }

  disconnected() {
    this.synced = false;
  }

  receiveSync(data) {
    const decoder = decoding.createDecoder(fromBase64(data));
    const kind = decoding.readVarUint(decoder);
    const payload = decoding.readVarUint8Array(decoder);
    if (kind === STEP1) {
      this.sendUpdate(STEP2, Y.encodeStateAsUpdate(this.doc, payload));
      this.synced = true;
    } else {
      Y.applyUpdate(this.doc, payload, REMOTE);
    }
  }

  receiveAwareness(data) {
    awarenessProtocol.applyAwarenessUpdate(this.awareness, fromBase64(data), REMOTE);
  }

  /**
   * An error frame: true when it was about the memo (and is handled here). After memo_out_of_step the
   * server's step 1 follows; any other memo_… refusal (memo_broken_text, memo_not_text, and whatever the server
   * refuses next) means this side holds an edit nobody else has, so it starts afresh.
   */
  refused(frame) {
    if (frame.code === ErrorCode.MEMO_OUT_OF_STEP) return true;
    if (!String(frame.code).startsWith("memo_")) return false;
    this.restart();
    this.hooks.refused?.(frame.message);
    return true;
  }

  /** Start afresh from the server's memo: this side's document holds something the others do not. */
  restart() {
    this.awareness.destroy(); // tells the other side this caret is gone
    this.doc.destroy();
    this.start();
    this.hooks.reset?.();
    this.connected();
  }

  /** Make this side's text ``value``: the diff from the current text, as one local edit. */
  replaceWith(value) {
    const [index, removed, inserted] = diff(this.text.toString(), value);
    return this.edit(index, removed, inserted);
  }

  /** Delete ``removed`` code units at ``index`` and insert ``inserted`` there (lone surrogates as U+FFFD). */
  edit(index, removed, inserted, origin = INPUT) {
    const clean = wellFormed(inserted);
    if (!removed && !clean) return;
    this.doc.transact(() => {
      if (removed) this.text.delete(index, removed);
      if (clean) this.text.insert(index, clean);
    }, origin);
  }

  destroy() {
    this.awareness.destroy();
    this.doc.destroy();
  }
}

// One participant's memo in Node, driven by tests/test_memo_interop.py: the browser's own memo-sync.js (npm
// yjs, lib0 and y-protocols) on a real WebSocket (npm ws) to the real server.
//
// Commands arrive as JSON lines on stdin ({"id": n, "op": ...}); each gets one JSON line on stdout
// ({"id": n, ...}). Edits are made the way the page makes them: the new value of the "textarea", turned into
// an edit by memo-sync.js's diff.
import * as readline from "node:readline";
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import { MemoSync, toBase64 } from "../../web/static/src/memo-sync.js";
import { FINAL_CLOSES, SUBPROTOCOL } from "../../web/static/src/protocol.js";

const [url, cookie, origin, role] = process.argv.slice(2);
const errors = []; // error frames from the server
const exceptions = []; // anything that threw while handling a frame (a Yjs that could not read it)
let socket = null;
let online = false; // wanted online: reconnect after unexpected closes
let welcomed = false;
let closes = [];
let attempts = 0;

function send(frame) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

const memo = new MemoSync(send, role, { refused: () => {} });

function open() {
  welcomed = false;
  const ws = new WebSocket(url, [SUBPROTOCOL], { headers: { Cookie: cookie }, origin });
  socket = ws;
  ws.on("message", (data) => {
    let frame;
    try {
      frame = JSON.parse(data.toString());
      if (frame.type === "welcome") { welcomed = true; attempts = 0; memo.connected(); }
      else if (frame.type === "memo.sync") memo.receiveSync(frame.data);
      else if (frame.type === "memo.awareness") memo.receiveAwareness(frame.data);
      else if (frame.type === "error") { errors.push(frame.code); memo.refused(frame); }
    } catch (error) {
      exceptions.push(`${frame?.type}: ${error}`);
    }
  });
  ws.on("error", () => {}); // a refused connection while the server restarts: the close follows
  ws.on("close", (code) => {
    if (socket !== ws) return;
    closes.push(code);
    memo.disconnected();
    welcomed = false;
    if (FINAL_CLOSES.has(code)) online = false; // replaced by another tab, as a browser stops there
    if (online) setTimeout(() => { if (online && socket === ws) open(); }, Math.min(1000, 50 * 2 ** attempts++));
  });
}

function codePoints(text) { return [...text]; }

function state() {
  return {
    text: memo.text.toString(),
    synced: memo.synced && welcomed && socket?.readyState === WebSocket.OPEN,
    online,
    errors: [...errors],
    exceptions: [...exceptions],
    closes: [...closes],
    client: memo.doc.clientID,
  };
}

// What the memo's old UTF-16 diff (or a hostile client) would send, made on a copy of this side's document so
// that this side itself stays as it was.
function crafted(kind) {
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(memo.doc));
  const text = copy.getText("memo");
  const before = Y.encodeStateVector(copy);
  const current = text.toString();
  if (kind === "cut_delete") { // backspace the first of 😀😁 with the old diff: delete(index + 1, 2)
    text.delete(current.indexOf("😀😁") + 1, 2);
  } else if (kind === "cut_insert") { // type 👍 right before 😀 with the old diff
    text.insert(current.indexOf("😀") + 1, "\udc4d\ud83d");
  } else if (kind === "past_clock") { // the second of two edits, the first never sent
    text.insert(0, "見えない");
    const middle = Y.encodeStateVector(copy);
    text.insert(0, "保存されない");
    return [2, Y.encodeStateAsUpdate(copy, middle)];
  } else if (kind === "lone_surrogate") { // "a\ud83db" written as WTF-8 (ED A0 BD), as no TextEncoder would
    text.insert(0, "a\ufffdb");
    const update = Y.encodeStateAsUpdate(copy, before);
    const at = update.findIndex((byte, i) => byte === 0xef && update[i + 1] === 0xbf && update[i + 2] === 0xbd);
    update.set([0xed, 0xa0, 0xbd], at);
    return [2, update];
  } else if (kind === "not_text") { // a formatting attribute: not plain text
    text.format(0, 1, { bold: true });
  } else {
    throw new Error(`no such crafted update: ${kind}`);
  }
  return [2, Y.encodeStateAsUpdate(copy, before)];
}

function craftedAwareness(kind) {
  if (kind === "truncated") return new Uint8Array([1, 2]);
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarUint(encoder, 12345);
  encoding.writeVarUint(encoder, 1);
  if (kind === "not_json") encoding.writeVarString(encoder, "{\"cursor\": NaN}");
  else if (kind === "other_role") encoding.writeVarString(encoder, JSON.stringify({ role: role === "host" ? "guest" : "host" }));
  else throw new Error(`no such crafted awareness: ${kind}`);
  return encoding.toUint8Array(encoder);
}

const commands = {
  connect() { online = true; if (!socket || socket.readyState >= WebSocket.CLOSING) open(); },
  drop({ abrupt }) {
    online = false;
    if (abrupt) socket?.terminate(); else socket?.close();
  },
  edit({ value }) { memo.replaceWith(value); },
  // At code point ``at`` (clamped), delete ``remove`` code points and insert ``insert``, made as the page
  // would: the textarea's new value, diffed.
  op({ at, remove, insert }) {
    const points = codePoints(memo.text.toString());
    const start = Math.min(at, points.length);
    memo.replaceWith([...points.slice(0, start), insert, ...points.slice(start + remove)].join(""));
  },
  // An IME: the reading typed one character at a time, then replaced by its conversion in one edit.
  ime({ at, reading, result }) {
    const points = codePoints(memo.text.toString());
    const start = Math.min(at, points.length);
    for (let i = 1; i <= reading.length; i += 1) {
      memo.replaceWith([...points.slice(0, start), reading.slice(0, i), ...points.slice(start)].join(""));
    }
    memo.replaceWith([...points.slice(0, start), result, ...points.slice(start)].join(""));
  },
  state() { return state(); },
  craft({ kind }) {
    const [messageKind, update] = crafted(kind);
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, messageKind);
    encoding.writeVarUint8Array(encoder, update);
    send({ type: "memo.sync", data: toBase64(encoding.toUint8Array(encoder)) });
  },
  awareness({ kind }) { send({ type: "memo.awareness", data: toBase64(craftedAwareness(kind)) }); },
  caret({ index }) {
    memo.awareness.setLocalStateField("cursor", Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(memo.text, index)));
  },
  peers() {
    return { peers: [...memo.awareness.getStates().entries()].filter(([id]) => id !== memo.doc.clientID).map(([, s]) => s) };
  },
  quit() { online = false; socket?.close(); memo.destroy(); setTimeout(() => process.exit(0), 50); },
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  let reply;
  try {
    reply = { id: command.id, ok: true, ...(commands[command.op](command) || {}) };
  } catch (error) {
    reply = { id: command.id, ok: false, error: String(error?.stack || error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
});
process.stdin.on("end", () => process.exit(0));

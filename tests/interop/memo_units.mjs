// memo-sync.js's pure parts in Node with the real npm yjs: the diff never cuts a surrogate pair, and
// splitUpdate's pieces each fit a frame and, applied one by one (each integrating at once, nothing pending),
// make the same document. Run by tests/test_memo_interop.py; prints "ok" or throws.
import assert from "node:assert/strict";
import * as Y from "yjs";
import { MAX_UPDATE_BYTES, diff, splitUpdate, wellFormed } from "../../web/static/src/memo-sync.js";

// The diff, on the edits the textarea makes.
assert.deepEqual(diff("😀😁", "😁"), [0, 2, ""]); // backspace the first: 😀 goes, not the shared half
assert.deepEqual(diff("😀", "👍😀"), [0, 0, "👍"]); // type 👍 right before 😀
assert.deepEqual(diff("😀😁", "😀"), [2, 2, ""]);
assert.deepEqual(diff("a😀b", "a😁b"), [1, 2, "😁"]);
assert.deepEqual(diff("e\u0301", "e"), [1, 1, ""]); // a combining mark on its own is a code point
assert.deepEqual(diff("👨‍👩‍👧", "👨‍👧"), [3, 3, ""]); // 👩 and a joiner
for (let round = 0; round < 2000; round += 1) { // random edits of random emoji strings: never a half
  const pool = ["😀", "😁", "👍", "a", "あ", "\u0301"];
  const pick = () => pool[Math.floor(Math.random() * pool.length)];
  const before = Array.from({ length: 6 }, pick);
  const after = [...before];
  after.splice(Math.floor(Math.random() * 7), Math.floor(Math.random() * 3), ...Array.from({ length: Math.floor(Math.random() * 3) }, pick));
  const [from, removed, inserted] = [diff(before.join(""), after.join(""))].flat();
  const text = before.join("");
  assert.equal(text.slice(0, from) + inserted + text.slice(from + removed), after.join(""));
  for (const cut of [from, from + removed]) assert.ok(!(text.charCodeAt(cut) >= 0xdc00 && text.charCodeAt(cut) <= 0xdfff), `${text} at ${cut}`);
  assert.equal(wellFormed(inserted), inserted);
}
assert.equal(wellFormed("a\ud83db\ude00"), "a\ufffdb\ufffd");

// splitUpdate: a step 2 with two clients' interleaved edits, long pastes among them, and deletions (what a
// participant who was away sends when it comes back), against what the server had before.
const a = new Y.Doc();
const b = new Y.Doc();
a.clientID = 1; // b's items depend on a's: b sorts first by id, so only an order by dependencies works
b.clientID = 2;
const sync = (from, to) => Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)));
a.getText("memo").insert(0, "始め\n");
sync(a, b);
const server = new Y.Doc();
sync(a, server);
a.getText("memo").insert(2, Array.from({ length: 30000 }, (_, i) => "あ😀e\u0301\n"[i % 5]).join(""));
sync(a, b);
b.getText("memo").insert(1000, "Bの挿入".repeat(5000));
b.getText("memo").delete(10, 400);
sync(b, a);
a.getText("memo").insert(50000, "最後");
a.getText("memo").delete(3, 7);
sync(a, b);
const whole = Y.encodeStateAsUpdate(b, Y.encodeStateVector(server));
const pieces = splitUpdate(whole);
assert.ok(whole.length > MAX_UPDATE_BYTES && pieces.length > 3, `${whole.length} bytes in ${pieces.length}`);
for (const piece of pieces) {
  assert.ok(piece.length <= MAX_UPDATE_BYTES, `a piece of ${piece.length} bytes`);
  Y.applyUpdate(server, piece);
  assert.equal(server.store.pendingStructs, null, "a piece the server would have to keep pending");
  assert.equal(server.store.pendingDs, null, "deletions the server would have to keep pending");
}
assert.equal(server.getText("memo").toString(), b.getText("memo").toString());
assert.deepEqual(splitUpdate(Y.encodeStateAsUpdate(a, Y.encodeStateVector(b))).length, 1); // small: as is
process.stdout.write("ok\n");

// 共有メモ: a shared Yjs text both sides type into at once, synced over the room channel
// (memo.sync / memo.awareness frames carrying base64 y-protocols messages; see docs/protocol.md).
// Yjs merges; this file only binds a <textarea> to the Y.Text and shows where the other side's caret is.
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import { t } from "./i18n.js";

const REMOTE = "remote"; // transaction origin of changes that came from the server
const INPUT = "input"; // transaction origin of changes typed into this page's textarea

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
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

/** The single edit that turns ``before`` into ``after``: [index, deleted count, inserted text]. */
export function diff(before, after) {
  let start = 0;
  const shorter = Math.min(before.length, after.length);
  while (start < shorter && before[start] === after[start]) start += 1;
  let end = 0;
  while (end < shorter - start && before[before.length - 1 - end] === after[after.length - 1 - end]) end += 1;
  return [start, before.length - start - end, after.slice(start, after.length - end)];
}

// A handler added to a channel type without dropping the one call.js registered.
function also(channel, type, handler) {
  const previous = channel.handlers.get(type);
  channel.on(type, (message) => { previous?.(message); handler(message); });
}

export function startMemo(channel, role) {
  const root = document.getElementById("memo");
  const area = document.getElementById("memo-text");
  if (!root || !area) return;
  const other = role === "host" ? "guest" : "host";
  const doc = new Y.Doc();
  const text = doc.getText("memo");
  const awareness = new awarenessProtocol.Awareness(doc);
  awareness.setLocalStateField("role", role);
  const peerLabel = document.getElementById("memo-peer");
  window.tsunaguMemo = { doc, text }; // for tests and debugging

  const send = (type, bytes) => channel.send({ type, data: toBase64(bytes) });
  const sendSync = (write) => {
    const encoder = encoding.createEncoder();
    write(encoder);
    send("memo.sync", encoding.toUint8Array(encoder));
  };

  // The textarea mirrors the Y.Text. ``shown`` is what it showed last; while an IME composes, remote changes
  // wait (rewriting the value would break the composition) and their deltas map the local edit afterwards.
  let shown = "";
  let composing = false;
  let waiting = [];

  function render(delta) {
    const start = movedIndex(area.selectionStart, delta);
    const end = movedIndex(area.selectionEnd, delta);
    const focused = document.activeElement === area;
    shown = text.toString();
    area.value = shown;
    if (focused) area.setSelectionRange(start, end);
  }

  function pushLocal() {
    if (area.value === shown) return;
    let [index, removed, inserted] = diff(shown, area.value);
    for (const delta of waiting) {
      const end = movedIndex(index + removed, delta);
      index = movedIndex(index, delta);
      removed = Math.max(0, end - index);
    }
    waiting = [];
    doc.transact(() => {
      if (removed) text.delete(index, removed);
      if (inserted) text.insert(index, inserted);
    }, INPUT);
    if (area.value !== text.toString()) render([]);
    else shown = area.value;
    updateCaret();
  }

  text.observe((event) => {
    if (event.transaction.origin === INPUT) return;
    if (composing) { waiting.push(event.delta); return; }
    render(event.delta);
    showPeer();
  });
  area.addEventListener("compositionstart", () => { composing = true; });
  area.addEventListener("compositionend", () => { composing = false; pushLocal(); });
  area.addEventListener("input", () => { if (!composing) pushLocal(); });

  doc.on("update", (update, origin) => {
    if (origin === REMOTE) return;
    sendSync((encoder) => syncProtocol.writeUpdate(encoder, update));
  });

  // Carets: ours as a Yjs relative position (it stays put while the other side types), theirs as a label.
  function updateCaret() {
    const anchor = Y.createRelativePositionFromTypeIndex(text, area.selectionStart);
    awareness.setLocalStateField("cursor", Y.relativePositionToJSON(anchor));
  }
  for (const type of ["select", "keyup", "click", "focus"]) area.addEventListener(type, () => { if (!composing) updateCaret(); });
  document.addEventListener("selectionchange", () => { if (document.activeElement === area && !composing) updateCaret(); });
  awareness.on("update", ({ added, updated, removed }, origin) => {
    if (origin !== REMOTE) {
      send("memo.awareness", awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]));
    } else if (added.length || updated.length || removed.length) {
      showPeer();
    }
  });

  function showPeer() {
    const marker = document.getElementById("memo-caret");
    let found = null;
    awareness.getStates().forEach((state, clientId) => {
      if (clientId !== doc.clientID && state.role === other && state.cursor) found = state.cursor;
    });
    if (!found) {
      peerLabel.textContent = "";
      if (marker) marker.hidden = true;
      return;
    }
    const absolute = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(found), doc);
    const index = absolute ? absolute.index : text.length;
    const before = text.toString().slice(0, index).split("\n");
    const line = before.length;
    const column = before[before.length - 1].length + 1;
    const who = other === "guest" ? t("Customer") : t("Representative");
    peerLabel.textContent = t("{who} is at line {line}, column {column}", { who, line, column });
    peerLabel.dataset.position = String(index);
    if (marker) placeMarker(marker, index, who);
  }

  // The other side's caret drawn over the textarea, measured with a hidden copy of its text.
  function placeMarker(marker, index, who) {
    const mirror = document.createElement("div");
    const style = getComputedStyle(area);
    for (const name of ["font", "lineHeight", "padding", "border", "boxSizing", "letterSpacing", "whiteSpace", "wordWrap", "width"]) mirror.style[name] = style[name];
    Object.assign(mirror.style, { position: "absolute", visibility: "hidden", whiteSpace: "pre-wrap", overflowWrap: "break-word", top: "0", left: "0" });
    mirror.textContent = area.value.slice(0, index);
    const spot = document.createElement("span");
    spot.textContent = "\u200b";
    mirror.appendChild(spot);
    area.parentElement.appendChild(mirror);
    const top = spot.offsetTop - area.scrollTop;
    const left = spot.offsetLeft - area.scrollLeft;
    mirror.remove();
    marker.style.transform = `translate(${left}px, ${top}px)`;
    marker.querySelector(".memo-caret-label").textContent = who;
    marker.hidden = top < 0 || top > area.clientHeight;
  }
  area.addEventListener("scroll", showPeer);

  also(channel, "welcome", () => {
    // (Re)connected: both sides send what the other lacks (step 1 → step 2), so edits made offline arrive.
    sendSync((encoder) => syncProtocol.writeSyncStep1(encoder, doc));
    send("memo.awareness", awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]));
  });
  channel.on("memo.sync", (message) => {
    const decoder = decoding.createDecoder(fromBase64(message.data));
    const encoder = encoding.createEncoder();
    syncProtocol.readSyncMessage(decoder, encoder, doc, REMOTE);
    if (encoding.length(encoder) > 0) send("memo.sync", encoding.toUint8Array(encoder));
  });
  channel.on("memo.awareness", (message) => {
    awarenessProtocol.applyAwarenessUpdate(awareness, fromBase64(message.data), REMOTE);
  });

  const toggle = document.getElementById("memo-toggle");
  toggle?.addEventListener("click", () => {
    const body = document.getElementById("memo-body");
    body.hidden = !body.hidden;
    toggle.setAttribute("aria-expanded", String(!body.hidden));
    root.classList.toggle("memo-closed", body.hidden);
  });

  const select = document.getElementById("memo-template");
  if (select && role === "host") {
    fetch("/api/memo-templates", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : { templates: [] })).then((body) => {
      for (const template of body.templates) {
        const option = document.createElement("option");
        option.value = String(template.id);
        option.textContent = template.shared ? `${template.title} (${t("shared")})` : template.title;
        option.dataset.body = template.body;
        select.appendChild(option);
      }
    }).catch(() => {});
    select.addEventListener("change", () => {
      const option = select.selectedOptions[0];
      if (!option?.dataset.body) return;
      const current = text.toString();
      const joint = current && !current.endsWith("\n") ? "\n" : "";
      text.insert(text.length, joint + option.dataset.body);
      select.value = "";
    });
  }
}

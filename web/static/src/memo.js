// 共有メモ: a shared Yjs text both sides type into at once, synced over the room channel by memo-sync.js.
// Yjs merges; this file only binds a <textarea> to the Y.Text and shows where the other side's caret is.
import * as Y from "yjs";
import { t } from "./i18n.js";
import { INPUT, MemoSync, REMOTE, diff, movedIndex } from "./memo-sync.js";
import { announce } from "./layout.js";

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
  const peerLabel = document.getElementById("memo-peer");
  const status = document.getElementById("memo-status");

  // The textarea mirrors the Y.Text. ``shown`` is what it showed last; while an IME composes, remote changes
  // wait (rewriting the value would break the composition) and their deltas map the local edit afterwards.
  let shown = "";
  let composing = false;
  let waiting = [];

  const memo = new MemoSync((frame) => channel.send(frame), role, {
    text(event) {
      if (event.transaction.origin === INPUT) return;
      if (event.transaction.origin === REMOTE) announce("memo"); // the other side wrote: badge a closed memo
      if (composing) { waiting.push(event.delta); return; }
      render(event.delta);
      showPeer();
    },
    awareness(changes, origin) {
      if (origin === REMOTE && (changes.added.length || changes.updated.length || changes.removed.length)) showPeer();
    },
    reset() {
      // A new document: the textarea follows it from empty, as the server's step 2 fills it.
      waiting = [];
      render([]);
      window.tsunaguMemo = { doc: memo.doc, text: memo.text, memo };
    },
    refused(message) {
      if (status) { status.textContent = message; status.hidden = false; }
    },
  });
  window.tsunaguMemo = { doc: memo.doc, text: memo.text, memo }; // for tests and debugging

  function render(delta) {
    const start = movedIndex(area.selectionStart, delta);
    const end = movedIndex(area.selectionEnd, delta);
    const focused = document.activeElement === area;
    shown = memo.text.toString();
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
    memo.edit(index, removed, inserted, INPUT);
    if (area.value !== memo.text.toString()) render([]);
    else shown = area.value;
    if (status && !status.hidden) status.hidden = true;
    updateCaret();
  }

  area.addEventListener("compositionstart", () => { composing = true; });
  area.addEventListener("compositionend", () => { composing = false; pushLocal(); });
  area.addEventListener("input", () => { if (!composing) pushLocal(); });

  // Carets: ours as a Yjs relative position (it stays put while the other side types), theirs as a label.
  function updateCaret() {
    const anchor = Y.createRelativePositionFromTypeIndex(memo.text, area.selectionStart);
    memo.awareness.setLocalStateField("cursor", Y.relativePositionToJSON(anchor));
  }
  for (const type of ["select", "keyup", "click", "focus"]) area.addEventListener(type, () => { if (!composing) updateCaret(); });
  document.addEventListener("selectionchange", () => { if (document.activeElement === area && !composing) updateCaret(); });

  function peerIndex() {
    let found = null;
    memo.awareness.getStates().forEach((state, clientId) => {
      if (clientId !== memo.doc.clientID && state?.role === other && state.cursor) found = state.cursor;
    });
    if (!found) return null;
    try {
      const absolute = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(found), memo.doc);
      return absolute ? absolute.index : memo.text.length;
    } catch {
      return null; // a caret this side cannot place (sent for another document)
    }
  }

  function showPeer() {
    const marker = document.getElementById("memo-caret");
    const index = peerIndex();
    if (index === null) {
      peerLabel.textContent = "";
      if (marker) marker.hidden = true;
      return;
    }
    const before = memo.text.toString().slice(0, index).split("\n");
    const line = before.length;
    const column = [...before[before.length - 1]].length + 1; // in characters, not UTF-16 units
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

  also(channel, "welcome", () => memo.connected());
  also(channel, "reconnecting", () => memo.disconnected());
  channel.on("memo.sync", (message) => memo.receiveSync(message.data));
  channel.on("memo.awareness", (message) => memo.receiveAwareness(message.data));
  // Memo refusals are the memo's to handle (and to explain, next to it); other errors stay call.js's.
  const previousError = channel.handlers.get("error");
  channel.on("error", (message) => { if (!memo.refused(message)) previousError?.(message); });

  // Templates: the host's own and the org's. Fetched again whenever the host comes to the list (or back to
  // this tab), so one added on the templates page during the call is there without a reload.
  const select = document.getElementById("memo-template");
  if (select && role === "host") {
    let loading = null;
    const loadTemplates = () => {
      loading ??= fetch("/api/memo-templates", { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .then((body) => { if (body) fillTemplates(select, body.templates); })
        .catch(() => {})
        .finally(() => { loading = null; });
      return loading;
    };
    loadTemplates();
    select.addEventListener("focus", loadTemplates);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") loadTemplates(); });
    select.addEventListener("change", () => {
      const option = select.selectedOptions[0];
      if (!option?.dataset.body) return;
      const current = memo.text.toString();
      const joint = current && !current.endsWith("\n") ? "\n" : "";
      memo.edit(current.length, 0, joint + option.dataset.body, null);
      select.value = "";
    });
  }
}

/** Replace the template choices (the first option, "Insert a template…", stays). */
function fillTemplates(select, templates) {
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...templates.map((template) => {
    const option = document.createElement("option");
    option.value = String(template.id);
    option.textContent = template.shared ? `${template.title} (${t("shared")})` : template.title;
    option.dataset.body = template.body;
    return option;
  }));
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
}

// ファイル送信: send files both ways in the call, with progress and cancel; receive with a download prompt.
// Sends are the raw file as the body (POST /api/rooms/{room}/files?name=…) with XMLHttpRequest, which reports
// upload progress; the room announces each stored file with "file.shared" to both sides.
import { ApiError } from "./api.js";
import { t } from "./i18n.js";
import { announce } from "./layout.js";

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** 1536 -> "1.5 KB", 52428800 -> "50 MB" (MB meaning MiB, as the limit is stated). */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1).replace(/\.0$/, "")} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "")} MB`;
}

function errorText(error) {
  if (error.code === "aborted") return t("Sending was cancelled.");
  if (error.status === 0) return t("Could not send. Please check your network and try again.");
  return error.message || t("Something went wrong. Please try again.");
}

/** POST one file; resolves with the stored file, rejects with an ApiError. Returns [promise, abort]. */
function sendFile(roomId, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", `/api/rooms/${roomId}/files?${new URLSearchParams({ name: file.name })}`);
    xhr.setRequestHeader("X-CSRF-Token", document.body.dataset.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON: a proxy's error page */ }
      if (xhr.status === 201) resolve(data);
      else reject(new ApiError(xhr.status, data.error?.code || "error", data.error?.message || null, 0));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", null, 0)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", null, 0)));
    xhr.send(file);
  });
  return [promise, () => xhr.abort()];
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = element("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Download with progress (fetch + ReadableStream into a Blob), then save; a plain link where unsupported. */
async function download(file, bar, state) {
  const response = await fetch(file.url, { credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, data.error?.code || "error", data.error?.message || null, 0);
  }
  if (!response.body?.getReader) {
    location.href = file.url;
    return;
  }
  const reader = response.body.getReader();
  const parts = [];
  let received = 0;
  bar.max = file.size || 1;
  bar.hidden = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    received += value.length;
    bar.value = received;
    state.textContent = t("Downloading… {percent}%", { percent: Math.floor((100 * received) / (file.size || 1)) });
  }
  save(new Blob(parts, { type: "application/octet-stream" }), file.name);
}

/**
 * The prompt that asks to save a file as it arrives (call.html #file-prompt); files arriving while one is
 * asked about wait their turn. Saving is the same download as the file's button in the list.
 */
function startPrompt() {
  const box = document.getElementById("file-prompt");
  const queue = [];
  let current = null;
  const next = () => {
    current = queue.shift() ?? null;
    box.hidden = !current;
    if (!current) return;
    document.getElementById("file-prompt-title").textContent = t("A file has arrived: {name}", { name: current.file.name });
    document.getElementById("file-prompt-detail").textContent = `${formatSize(current.file.size)} · ${current.from}`;
  };
  document.getElementById("file-prompt-save").addEventListener("click", () => {
    const { save: fetchIt } = current ?? {};
    next();
    fetchIt?.();
  });
  document.getElementById("file-prompt-later").addEventListener("click", next);
  return {
    offer(file, from, save) {
      queue.push({ file, from, save });
      if (!current) next();
    },
  };
}

export function startFiles(channel, role) {
  const panel = document.getElementById("files");
  if (!panel) return;
  const roomId = document.getElementById("call")?.dataset.room;
  const sendBox = document.getElementById("files-send");
  const input = document.getElementById("files-input");
  const sendButton = document.getElementById("files-send-button");
  const limitText = document.getElementById("files-limit");
  const receiveOnly = document.getElementById("files-receive-only");
  const errorBox = document.getElementById("files-error");
  const outgoing = document.getElementById("files-outgoing");
  const incoming = document.getElementById("files-incoming");
  const none = document.getElementById("files-none");
  const seen = new Set();
  const ownPending = new Map();  // file.shared for our own sends that arrived before their XHR finished
  let sending = 0;
  let maxBytes = 50 * 1024 * 1024;
  let maxMb = "50";

  const showError = (text) => { errorBox.textContent = text; errorBox.hidden = !text; };
  const prompt = startPrompt();

  /** A file from the other side; ``arriving``: it came during the call (not in the listing on load). */
  function addIncoming(file, arriving = false) {
    if (seen.has(file.id)) return;
    seen.add(file.id);
    none.hidden = true;
    const url = file.url || `/rooms/${roomId}/files/${file.id}`;
    const info = { ...file, url };
    const bar = element("progress", { max: file.size || 1, value: 0, hidden: true });
    const state = element("span", { className: "file-state muted" });
    const button = element("button", { type: "button", textContent: t("Download") });
    const link = element("a", { href: url, download: file.name, textContent: t("Plain link"), className: "muted" });
    const from = file.sender === "host" ? t("From the host") : t("From the customer");
    const item = element("li", { className: "file-item incoming" }, [
      element("span", { className: "file-name", textContent: file.name }),
      element("span", { className: "muted", textContent: `${formatSize(file.size)} · ${from}` }),
      bar, state, button, link,
    ]);
    item.dataset.fileId = String(file.id);
    const fetchIt = async () => {
      if (button.disabled) return;
      button.disabled = true;
      item.classList.remove("failed");
      try {
        await download(info, bar, state);
        state.textContent = t("Downloaded");
      } catch (error) {
        item.classList.add("failed");
        state.textContent = error instanceof ApiError && error.message
          ? error.message : t("Could not download. Please try again.");
      } finally {
        button.disabled = false;
      }
    };
    button.addEventListener("click", fetchIt);
    incoming.append(item);
    if (arriving) {
      announce("files");
      prompt.offer(file, from, fetchIt);
    }
  }

  function addSent(file) {
    if (seen.has(file.id)) return;
    seen.add(file.id);
    const bar = element("progress", { max: 1, value: 1 });
    outgoing.append(element("li", { className: "file-item outgoing done" }, [
      element("span", { className: "file-name", textContent: file.name }),
      element("span", { className: "muted", textContent: formatSize(file.size) }),
      bar, element("span", { className: "file-state", textContent: t("Sent") }),
    ]));
  }

  function sendOne(file) {
    const bar = element("progress", { max: file.size || 1, value: 0 });
    const state = element("span", { className: "file-state", textContent: t("Waiting…") });
    const cancel = element("button", { type: "button", textContent: t("Cancel") });
    const item = element("li", { className: "file-item outgoing" }, [
      element("span", { className: "file-name", textContent: file.name }),
      element("span", { className: "muted", textContent: formatSize(file.size) }),
      bar, state, cancel,
    ]);
    outgoing.append(item);
    let abort = null;
    let cancelled = false;
    cancel.addEventListener("click", () => { cancelled = true; abort?.(); });
    return async () => {
      if (cancelled) {
        state.textContent = t("Sending was cancelled.");
        item.classList.add("failed");
        cancel.remove();
        return;
      }
      state.textContent = t("Sending… {percent}%", { percent: 0 });
      const [promise, doAbort] = sendFile(roomId, file, (loaded, total) => {
        bar.max = total || 1;
        bar.value = loaded;
        state.textContent = t("Sending… {percent}%", { percent: Math.floor((100 * loaded) / (total || 1)) });
      });
      abort = doAbort;
      try {
        const stored = await promise;
        seen.add(stored.id);
        ownPending.delete(stored.id);
        bar.value = bar.max;
        item.classList.add("done");
        item.dataset.fileId = String(stored.id);
        state.textContent = t("Sent");
      } catch (error) {
        item.classList.add("failed");
        state.textContent = errorText(error);
      } finally {
        cancel.remove();
      }
    };
  }

  sendButton.addEventListener("click", async () => {
    showError("");
    const files = [...input.files];
    if (!files.length) { showError(t("Choose the files to send.")); return; }
    const total = files.reduce((sum, file) => sum + file.size, 0);
    if (total > maxBytes) {
      showError(files.length > 1
        ? t("These files are {size} together. Up to {max_mb} MB can be sent at a time.", { size: formatSize(total), max_mb: maxMb })
        : t("The file is too large. Up to {max_mb} MB can be sent at a time.", { max_mb: maxMb }));
      return;
    }
    if (files.some((file) => file.size === 0)) { showError(t("The file is empty.")); return; }
    input.value = "";
    sendButton.disabled = true;
    const jobs = files.map(sendOne);
    sending += 1;
    try {
      for (const job of jobs) await job();  // one at a time: the whole send counts against the limit
    } finally {
      sending -= 1;
      sendButton.disabled = false;
      if (!sending) {
        for (const file of ownPending.values()) addSent(file);
        ownPending.clear();
      }
    }
  });

  channel.on("file.shared", (message) => {
    const file = message.file;
    if (file.sender !== role) addIncoming(file, true);
    else if (sending) ownPending.set(file.id, file);
    else addSent(file);
  });

  (async () => {
    try {
      const response = await fetch(`/api/rooms/${roomId}/files`, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) return;
      const data = await response.json();
      maxBytes = data.max_bytes;
      maxMb = data.max_mb;
      limitText.textContent = t("Up to {max_mb} MB at a time. The other side can download them.", { max_mb: maxMb });
      sendBox.hidden = !data.can_send;
      receiveOnly.hidden = data.can_send || role !== "host";
      for (const file of data.files) {
        if (file.sender === role) addSent(file);
        else addIncoming(file);
      }
    } catch { /* the listing is a convenience; file.shared still arrives */ }
  })();
}

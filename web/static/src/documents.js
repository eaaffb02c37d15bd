// The document library (資料): list, upload with progress, processing progress, kind, delete.
import { ApiError, postJSON } from "./api.js";
import { N_, t } from "./i18n.js";

const KIND_LABELS = { slides: N_("Slides (page by page)"), vertical: N_("Vertical (scroll)") };
const STATUS_LABELS = { processing: N_("Processing"), ready: N_("Ready"), failed: N_("Failed") };
const OFFICE = /\.(pptx|docx|xlsx|ppt|doc|xls|odp|odt|ods)$/i;
const OFFICE_MISSING = N_("PowerPoint, Word and Excel files need LibreOffice, which is not installed on this server. Please upload a PDF.");
const POLL_MS = 1000;
const MAX_POLLS = 900; // 15 minutes of processing is far past the server's own time limit

function messageOf(error) {
  return error instanceof ApiError && error.message
    ? error.message
    : t("Could not connect. Please check your network and try again.");
}

/** POST the raw file (not multipart) with XMLHttpRequest, which reports upload progress. */
function uploadFile(file, orgWide, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ name: file.name, org_wide: orgWide ? "1" : "0" });
    xhr.open("POST", `/api/documents?${query}`);
    xhr.setRequestHeader("X-CSRF-Token", document.body.dataset.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON: a proxy's error page */ }
      if (xhr.status === 202) resolve(data);
      else reject(new ApiError(xhr.status, data.error?.code || "error", data.error?.message || null, 0));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", null, 0)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "network", null, 0)));
    xhr.send(file);
  });
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export function startDocumentsPage() {
  const library = document.getElementById("library");
  if (!library) return;
  const list = document.getElementById("document-list");
  const empty = document.getElementById("no-documents");
  const stopped = document.getElementById("poll-stopped");
  const form = document.getElementById("upload-form");
  const input = document.getElementById("upload-file");
  const orgWide = document.getElementById("upload-org-wide");
  const button = document.getElementById("upload-button");
  const status = document.getElementById("upload-status");
  const bar = document.getElementById("upload-progress");
  const statusText = document.getElementById("upload-text");
  const error = document.getElementById("upload-error");
  const maxBytes = Number(library.dataset.maxBytes);
  const officeInstalled = library.dataset.office === "1";
  let documents = JSON.parse(document.getElementById("documents-data").textContent);
  let timer = null;
  let pollsLeft = MAX_POLLS;

  const showError = (text) => { error.textContent = text; error.hidden = !text; };

  function row(doc) {
    const thumb = doc.thumb
      ? element("img", { src: doc.thumb, alt: "", width: 120, loading: "lazy", className: "thumb" })
      : "";
    let kind = "";
    if (doc.status === "failed") {
      // Nothing to show, so nothing to choose.
    } else if (doc.can_change) {
      kind = element("select", { ariaLabel: t("Display") }, Object.entries(KIND_LABELS).map(
        ([value, label]) => element("option", { value, textContent: t(label), selected: value === doc.kind })));
      kind.addEventListener("change", async () => {
        kind.disabled = true;
        try {
          Object.assign(doc, await postJSON(`/api/documents/${doc.id}/kind`, { kind: kind.value }));
        } catch (failure) {
          kind.value = doc.kind;
          showError(messageOf(failure));
        } finally {
          kind.disabled = false;
        }
      });
    } else {
      kind = t(KIND_LABELS[doc.kind]);
    }
    const state = [t(STATUS_LABELS[doc.status])];
    if (doc.status === "processing" && doc.pages) {
      state.push(" ", element("progress", { max: doc.pages, value: doc.rendered }),
        " ", t("{rendered} / {pages} pages", { rendered: doc.rendered, pages: doc.pages }));
    } else if (doc.status === "processing") {
      state.push(" ", element("progress"));
    } else if (doc.status === "failed") {
      state.push(element("div", { className: "error", textContent: doc.error }));
    }
    const actions = [];
    if (doc.can_change) {
      const remove = element("button", { type: "button", textContent: t("Delete") });
      remove.addEventListener("click", async () => {
        if (!window.confirm(t("Delete “{name}”? This cannot be undone.", { name: doc.name }))) return;
        remove.disabled = true;
        try {
          await postJSON(`/api/documents/${doc.id}/delete`);
          documents = documents.filter((other) => other.id !== doc.id);
          draw();
        } catch (failure) {
          remove.disabled = false;
          showError(messageOf(failure));
        }
      });
      actions.push(remove);
    }
    const name = [doc.name];
    if (doc.org_wide) name.push(" ", element("span", { className: "muted", textContent: t("(whole organisation)") }));
    const cells = [thumb, name, doc.status === "ready" ? String(doc.pages) : "", kind, state, actions];
    const tr = element("tr", {}, cells.map((content) => element("td", {}, [content].flat())));
    tr.dataset.id = doc.id;
    tr.dataset.status = doc.status;
    return tr;
  }

  function draw() {
    list.replaceChildren(...documents.map(row));
    empty.hidden = documents.length > 0;
  }

  // Poll once a second while anything is processing, and stop when nothing is (or after MAX_POLLS).
  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (!documents.some((doc) => doc.status === "processing")) return;
    if (pollsLeft <= 0) { stopped.hidden = false; return; }
    pollsLeft -= 1;
    timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    try {
      const response = await fetch("/api/documents", {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (response.ok) {
        documents = (await response.json()).documents;
        draw();
      }
    } catch {
      // The network blinked; the next poll tries again (each one counts against MAX_POLLS).
    }
    schedule();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const file = input.files[0];
    if (!file) { showError(t("Choose a file to upload.")); return; }
    if (file.size > maxBytes) {
      showError(t("The file is too large. Files of up to {max_mb} MB can be uploaded.",
        { max_mb: library.dataset.maxMb }));
      return;
    }
    if (OFFICE.test(file.name) && !officeInstalled) { showError(t(OFFICE_MISSING)); return; }
    button.disabled = true;
    status.hidden = false;
    bar.value = 0;
    statusText.textContent = t("Uploading… {percent}%", { percent: 0 });
    try {
      const doc = await uploadFile(file, orgWide?.checked, (fraction) => {
        bar.value = fraction;
        statusText.textContent = t("Uploading… {percent}%", { percent: Math.floor(fraction * 100) });
      });
      documents = [doc, ...documents.filter((other) => other.id !== doc.id)];
      form.reset();
      pollsLeft = MAX_POLLS;
      draw();
      schedule();
    } catch (failure) {
      showError(messageOf(failure));
    } finally {
      button.disabled = false;
      status.hidden = true;
    }
  });

  draw();
  schedule();
}

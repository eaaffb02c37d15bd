import { t } from "./i18n.js";

const SCROLL_SEND_MS = 80;

function pageURL(documentId, page) {
  return `/documents/${documentId}/pages/${page}.jpg`;
}

/**
 * 資料共有 in the call: shows the shared document and turns, scrolls and closes it for both sides.
 * `send` puts a message on the room channel; `role` is "host", "guest" or "observer" (sitting in: never sends).
 */
export class DocumentViewer {
  constructor(root, role, send) {
    this.root = root;
    this.role = role;
    this.send = send;
    this.state = { document: null, page: 1, position: 0, guest_control: false };
    this.title = root.querySelector("[data-doc-title]");
    this.counter = root.querySelector("[data-doc-counter]");
    this.slide = root.querySelector("[data-doc-slide]");
    this.slideImage = root.querySelector("[data-doc-slide] img");
    this.scroller = root.querySelector("[data-doc-scroll]");
    this.appliedTop = null; // the scrollTop this viewer set itself, whose scroll event is not the user's
    this.lastScrollSent = 0;
    this.scrollTimer = null;
    this.onChange = () => {}; // the page on show or the document changed (the pointer, the full-screen view)

    root.querySelector("[data-doc-close]").addEventListener("click", () => this.close());
    this.slide.addEventListener("click", (event) => {
      const box = this.slide.getBoundingClientRect();
      this.turn(event.clientX - box.left < box.width / 2 ? -1 : 1);
    });
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  get steering() {
    // A manager sitting in ("observer") only follows; the guest steers when the host allows it.
    return this.role === "host" || (this.role === "guest" && this.state.guest_control);
  }

  /** A doc.state frame: what both sides show. */
  show(state) {
    const previous = this.state.document;
    this.state = state;
    const info = state.document;
    this.root.hidden = !info;
    this.root.classList.toggle("steering", this.steering);
    if (!info) {
      this.onChange(previous !== null);
      return;
    }
    this.title.textContent = info.name;
    this.counter.textContent = t("Page {page} of {pages}", { page: state.page, pages: info.pages });
    this.slide.hidden = info.kind !== "slides";
    this.scroller.hidden = info.kind !== "vertical";
    if (info.kind === "slides") {
      this.slideImage.src = pageURL(info.id, state.page);
      this.slideImage.alt = t("Page {page} of {pages}", { page: state.page, pages: info.pages });
      if (state.page < info.pages) new Image().src = pageURL(info.id, state.page + 1); // ready for →
    } else {
      if (!previous || previous.id !== info.id) this.renderPages(info);
      this.scrollTo(state.position);
    }
    this.onChange(!previous || previous.id !== info.id);
  }

  renderPages(info) {
    this.scroller.replaceChildren();
    for (let page = 1; page <= info.pages; page += 1) {
      const image = document.createElement("img");
      image.src = pageURL(info.id, page);
      image.alt = t("Page {page} of {pages}", { page, pages: info.pages });
      image.dataset.page = String(page);
      image.loading = page <= 2 ? "eager" : "lazy";
      image.addEventListener("load", () => this.scrollTo(this.state.position), { once: true });
      this.scroller.append(image);
    }
  }

  /** A doc.scroll frame from the other side. */
  followScroll(message) {
    this.state.position = message.position;
    this.state.page = message.page;
    this.counter.textContent = t("Page {page} of {pages}", { page: message.page, pages: this.state.document?.pages ?? 0 });
    this.scrollTo(message.position);
    this.onChange(false);
  }

  scrollTo(position) {
    const range = this.scroller.scrollHeight - this.scroller.clientHeight;
    if (range <= 0) return;
    const top = position * range;
    if (Math.abs(this.scroller.scrollTop - top) < 1) return;
    // Remember it rather than flag a frame: animation frames can be throttled, and a throttled flag would
    // swallow the user's own scrolling.
    this.appliedTop = top;
    this.scroller.scrollTop = top;
  }

  position() {
    const range = this.scroller.scrollHeight - this.scroller.clientHeight;
    return range > 0 ? Math.min(1, Math.max(0, this.scroller.scrollTop / range)) : 0;
  }

  topPage() {
    const top = this.scroller.scrollTop;
    for (const image of this.scroller.querySelectorAll("img")) {
      if (image.offsetTop + image.offsetHeight > top + 1) return Number(image.dataset.page);
    }
    return this.state.document?.pages ?? 1;
  }

  onScroll() {
    const applied = this.appliedTop;
    this.appliedTop = null;
    if (applied !== null && Math.abs(this.scroller.scrollTop - applied) < 2) return; // our own scrollTo
    if (!this.steering || !this.state.document) return;
    this.state.position = this.position(); // at once: a late image load re-applies this, not an old one
    clearTimeout(this.scrollTimer);
    const wait = Math.max(0, SCROLL_SEND_MS - (performance.now() - this.lastScrollSent));
    this.scrollTimer = setTimeout(() => {
      const position = this.position();
      const page = this.topPage();
      this.state.position = position;
      this.state.page = page;
      this.counter.textContent = t("Page {page} of {pages}", { page, pages: this.state.document.pages });
      this.lastScrollSent = performance.now();
      this.send({ type: "doc.scroll", position, page });
    }, wait);
  }

  turn(step) {
    const info = this.state.document;
    if (!info || !this.steering) return;
    const page = Math.min(info.pages, Math.max(1, this.state.page + step));
    if (page === this.state.page) return;
    this.send({ type: "doc.page", page });
    // Show it now (the room's doc.state confirms it), so quick presses each move one page on.
    this.show({ ...this.state, page });
  }

  close() {
    if (this.state.document && this.steering) this.send({ type: "doc.close" });
  }

  onKey(event) {
    const info = this.state.document;
    if (!info || event.defaultPrevented || event.isComposing || event.altKey || event.ctrlKey || event.metaKey) return;
    // Never while typing (the memo, a file name, a template choice), nor under a dialog: its own Esc closes
    // it. In the full-screen page, ←/→ still turn pages.
    if (event.target.closest?.("input, textarea, select, [contenteditable]:not([contenteditable='false'])")) return;
    const dialog = document.querySelector("dialog[open]");
    if (dialog && (dialog.id !== "doc-zoom" || event.key === "Escape")) return;
    const keys = {
      slides: { ArrowRight: () => this.turn(1), ArrowLeft: () => this.turn(-1) },
      vertical: {
        ArrowDown: () => this.scroller.scrollBy({ top: this.scroller.clientHeight * 0.3 }),
        ArrowUp: () => this.scroller.scrollBy({ top: -this.scroller.clientHeight * 0.3 }),
      },
    };
    const action = event.key === "Escape" ? () => this.close() : keys[info.kind][event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }
}

/** The host's list of ready documents (資料共有), opened with doc.open. */
export async function loadDocumentList(list, open) {
  list.replaceChildren();
  let documents = [];
  try {
    const response = await fetch("/api/documents", { headers: { Accept: "application/json" } });
    const data = await response.json();
    documents = Array.isArray(data) ? data : data.documents || [];
  } catch {
    list.textContent = t("Could not load the documents. Please try again.");
    return;
  }
  if (!documents.length) {
    list.textContent = t("No documents yet. Upload them in the document library.");
    return;
  }
  for (const item of documents) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "doc-item";
    button.dataset.documentId = String(item.id);
    const ready = item.status === "ready";
    button.disabled = !ready;
    const thumb = document.createElement("img");
    thumb.alt = "";
    if (ready) thumb.src = `/documents/${item.id}/thumbs/1.jpg`;
    const label = document.createElement("span");
    label.textContent = ready ? item.name : `${item.name} (${t("processing")})`;
    button.append(thumb, label);
    button.addEventListener("click", () => open(item.id));
    list.append(button);
  }
}

// The shared page full screen (call_zoom.html): pinch with two fingers (or + / −, ctrl + wheel, a double tap)
// to zoom, drag to move around; it follows the page turns of the side that steers and closes with the document.
import { t } from "./i18n.js";

const MAX_ZOOM = 6; // times the size that fits the screen

const $ = (id) => document.getElementById(id);

export class PageZoom {
  constructor(viewer) {
    this.viewer = viewer;
    this.dialog = $("doc-zoom");
    this.area = $("doc-zoom-area");
    this.image = $("doc-zoom-image");
    this.level = $("doc-zoom-level");
    this.counter = $("doc-zoom-counter");
    this.fitScale = 1;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.pointers = new Map();
    this.pinch = null;
    this.page = null;

    viewer.root.querySelector("[data-doc-zoom]")?.addEventListener("click", () => this.open());
    $("doc-zoom-close").addEventListener("click", () => this.dialog.close());
    $("doc-zoom-in").addEventListener("click", () => this.zoomAt(1.5));
    $("doc-zoom-out").addEventListener("click", () => this.zoomAt(1 / 1.5));
    this.image.addEventListener("load", () => this.fit());
    this.area.addEventListener("pointerdown", (event) => this.down(event));
    this.area.addEventListener("pointermove", (event) => this.move(event));
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) this.area.addEventListener(type, (event) => this.up(event));
    this.area.addEventListener("wheel", (event) => {
      if (!event.ctrlKey) return;
      event.preventDefault();
      this.zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX, event.clientY);
    }, { passive: false });
    this.area.addEventListener("dblclick", (event) => {
      this.zoomAt(this.scale > this.fitScale * 1.05 ? this.fitScale / this.scale : 2, event.clientX, event.clientY);
    });
    new ResizeObserver(() => { if (this.dialog.open) this.fit(); }).observe(this.area);
  }

  open() {
    if (!this.viewer.state.document) return;
    this.dialog.showModal();
    this.follow();
  }

  /** The document's state changed (doc.state, doc.scroll): show the page on top, or close with it. */
  follow() {
    if (!this.dialog.open) return;
    const { state } = this.viewer;
    if (!state.document) {
      this.dialog.close();
      return;
    }
    this.counter.textContent = `${state.document.name} · ${t("Page {page} of {pages}", { page: state.page, pages: state.document.pages })}`;
    const src = `/documents/${state.document.id}/pages/${state.page}.jpg`;
    if (this.page !== src) {
      this.page = src;
      this.image.alt = t("Page {page} of {pages}", { page: state.page, pages: state.document.pages });
      this.image.src = src;
      if (this.image.complete && this.image.naturalWidth) this.fit();
    }
  }

  fit() {
    const width = this.image.naturalWidth;
    const height = this.image.naturalHeight;
    if (!width || !height) return;
    const box = this.area.getBoundingClientRect();
    this.fitScale = Math.min(box.width / width, box.height / height);
    this.scale = this.fitScale;
    this.x = (box.width - width * this.scale) / 2;
    this.y = (box.height - height * this.scale) / 2;
    this.apply();
  }

  /** Zoom by ``factor`` around a point of the screen (the middle by default), within fit…6× fit. */
  zoomAt(factor, clientX, clientY) {
    const box = this.area.getBoundingClientRect();
    const cx = (clientX ?? box.left + box.width / 2) - box.left;
    const cy = (clientY ?? box.top + box.height / 2) - box.top;
    const scale = Math.min(this.fitScale * MAX_ZOOM, Math.max(this.fitScale, this.scale * factor));
    // The point under (cx, cy) stays where it is.
    this.x = cx - ((cx - this.x) * scale) / this.scale;
    this.y = cy - ((cy - this.y) * scale) / this.scale;
    this.scale = scale;
    this.apply();
  }

  apply() {
    const box = this.area.getBoundingClientRect();
    const width = this.image.naturalWidth * this.scale;
    const height = this.image.naturalHeight * this.scale;
    // Keep the page on screen: centred while smaller than the screen, edges no further in than the screen's.
    this.x = width <= box.width ? (box.width - width) / 2 : Math.min(0, Math.max(box.width - width, this.x));
    this.y = height <= box.height ? (box.height - height) / 2 : Math.min(0, Math.max(box.height - height, this.y));
    this.image.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.level.textContent = `${Math.round((this.scale / (this.fitScale || 1)) * 100)}%`;
    this.image.dataset.zoom = String(this.scale / (this.fitScale || 1));
  }

  down(event) {
    this.area.setPointerCapture?.(event.pointerId);
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      this.pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1 };
    }
  }

  move(event) {
    const before = this.pointers.get(event.pointerId);
    if (!before) return;
    const now = { x: event.clientX, y: event.clientY };
    this.pointers.set(event.pointerId, now);
    if (this.pointers.size >= 2 && this.pinch) {
      const [a, b] = [...this.pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      this.zoomAt(distance / this.pinch.distance, (a.x + b.x) / 2, (a.y + b.y) / 2);
      this.pinch.distance = distance;
    } else if (this.pointers.size === 1) {
      this.x += now.x - before.x;
      this.y += now.y - before.y;
      this.apply();
    }
  }

  up(event) {
    this.pointers.delete(event.pointerId);
    if (this.pointers.size < 2) this.pinch = null;
  }
}

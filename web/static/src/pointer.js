// The pointer: the steering side's mouse over the shared page, shown to the other side as a marker at the same
// spot of the same page, whatever size each shows it at (doc.pointer, as fractions of the page).
import { POINTER_PER_SECOND } from "./protocol.js";

const INTERVAL_MS = 1000 / POINTER_PER_SECOND;

/** Where on which page a mouse event is, as {page, x, y} in 0–1; null when it is not over a page image. */
function spot(event, viewer) {
  const image = event.target.closest?.("img[data-page], [data-doc-slide] img");
  if (!image || !image.naturalWidth) return null;
  const box = image.getBoundingClientRect();
  const x = (event.clientX - box.left) / box.width;
  const y = (event.clientY - box.top) / box.height;
  if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) return null;
  const page = image.dataset.page ? Number(image.dataset.page) : viewer.state.page;
  return { page, x: Math.round(x * 10000) / 10000, y: Math.round(y * 10000) / 10000 };
}

/**
 * Sends this side's pointer while it steers: the first move at once, then at most one every 50 ms (the
 * latest), and null once the mouse leaves the page. Touch does not point (a finger on a phone turns pages).
 */
export function sendPointer(viewer, send) {
  let last = 0;
  let timer = null;
  let pending = undefined; // the position waiting for its turn (null: left the page)
  let sent = null; // the last position sent, so leaving is said once

  function flush() {
    timer = null;
    if (pending === undefined) return;
    last = performance.now();
    sent = pending;
    send({ type: "doc.pointer", at: pending });
    pending = undefined;
  }

  function offer(at) {
    if (at === null && sent === null && pending === undefined) return;
    pending = at;
    const wait = last + INTERVAL_MS - performance.now();
    if (wait <= 0 && timer === null) flush();
    else if (timer === null) timer = setTimeout(flush, Math.max(0, wait));
  }

  const area = viewer.root;
  area.addEventListener("pointermove", (event) => {
    if (event.pointerType === "touch" || !viewer.steering || !viewer.state.document) return;
    offer(spot(event, viewer));
  });
  area.addEventListener("pointerleave", (event) => {
    if (event.pointerType !== "touch") offer(null);
  });
  // A page turned or the document closed under a still mouse: the old spot means nothing any more.
  return { reset() { sent = null; pending = undefined; } };
}

/** Shows the other side's pointer on this side's copy of the page (the marker in call_stage.html). */
export class PointerMarker {
  constructor(viewer) {
    this.viewer = viewer;
    this.slideMarker = viewer.root.querySelector("[data-doc-slide] [data-pointer]");
    this.scrollMarker = document.createElement("span");
    this.scrollMarker.className = "pointer-marker";
    this.scrollMarker.dataset.pointer = "";
    this.scrollMarker.hidden = true;
    this.scrollMarker.setAttribute("aria-hidden", "true");
    this.at = null;
    // The page's box changes with the window, a rotation, or an image that finishes loading.
    this.resizing = new ResizeObserver(() => this.place());
    this.resizing.observe(viewer.slide);
    this.resizing.observe(viewer.scroller);
  }

  /** A doc.pointer frame (``at`` null: the pointer left the page). */
  show(at) {
    this.at = at;
    this.place();
  }

  hide() {
    this.at = null;
    this.place();
  }

  place() {
    const { viewer } = this;
    const info = viewer.state.document;
    const at = this.at;
    let image = null;
    let marker = null;
    if (at && info?.kind === "slides" && at.page === viewer.state.page) {
      image = viewer.slideImage;
      marker = this.slideMarker;
    } else if (at && info?.kind === "vertical") {
      image = viewer.scroller.querySelector(`img[data-page="${at.page}"]`);
      marker = this.scrollMarker;
      if (marker.parentElement !== viewer.scroller) viewer.scroller.append(marker);
    }
    for (const other of [this.slideMarker, this.scrollMarker]) if (other !== marker) other.hidden = true;
    if (!image || !marker || !image.offsetWidth) {
      if (marker) marker.hidden = true;
      return;
    }
    const left = image.offsetLeft + at.x * image.offsetWidth;
    const top = image.offsetTop + at.y * image.offsetHeight;
    marker.style.transform = `translate(${left}px, ${top}px)`;
    Object.assign(marker.dataset, { page: String(at.page), x: String(at.x), y: String(at.y) });
    marker.hidden = false;
  }
}

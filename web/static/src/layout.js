// The call page's layout: what the stage shows, which panel (memo, files, その他) is open, the badges that say
// something new arrived in a closed one, the host's document picker, and the guest's movable camera tile.
// call.css does the placing from two attributes this sets on #call: data-stage and data-sheet.
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

// A computer (or a tablet held wide): the memo sits beside the stage instead of over it. Keep in step with
// the media query of call.css.
const WIDE = "(min-width: 900px) and (min-height: 540px)";

/** Something new arrived in a panel ("memo", "files", "more"): badge it unless it is open and in view. */
export function announce(sheet) {
  document.dispatchEvent(new CustomEvent("tsunagu:news", { detail: { sheet } }));
}

export function startLayout(root, role) {
  const stage = $("stage");
  const viewer = $("viewer");
  const screenView = $("screen-view");
  const stageStatus = $("stage-status");
  const wide = window.matchMedia(WIDE);
  const toggles = [...root.querySelectorAll("[data-sheet-toggle]")];
  const sheets = [...root.querySelectorAll(".sheet[data-sheet]")];

  function openSheet(name) {
    root.dataset.sheet = name;
    sheets.forEach((sheet) => { sheet.hidden = sheet.dataset.sheet !== name; });
    toggles.forEach((button) => button.setAttribute("aria-expanded", String(button.dataset.sheetToggle === name)));
    if (name) badge(name, false);
  }

  function badge(name, on) {
    const dot = root.querySelector(`[data-badge="${name}"]`);
    if (!dot) return;
    dot.hidden = !on;
    const button = dot.closest("button");
    if (!button) return;
    // Screen readers hear it with the button's name: "共有メモ (新着あり)".
    if (on) button.setAttribute("aria-description", t("Something new"));
    else button.removeAttribute("aria-description");
  }

  toggles.forEach((button) => button.addEventListener("click", () => {
    const name = button.dataset.sheetToggle;
    openSheet(root.dataset.sheet === name ? "" : name);
    if (root.dataset.sheet === name) {
      const first = $(name)?.querySelector("textarea, input, select, button:not([data-sheet-close])");
      if (name === "memo") first?.focus({ preventScroll: true });
    }
  }));
  root.querySelectorAll("[data-sheet-close]").forEach((button) => button.addEventListener("click", () => {
    const name = button.closest(".sheet")?.dataset.sheet;
    openSheet("");
    root.querySelector(`[data-sheet-toggle="${name}"]`)?.focus();
  }));
  document.addEventListener("tsunagu:news", (event) => {
    const name = event.detail.sheet;
    if (root.dataset.sheet !== name) badge(name, true);
  });

  // The guest on a computer starts with the memo open beside the stage; on a phone everything starts closed,
  // so the stage has the screen. Turning a tablet keeps what is open.
  openSheet(role === "host" || wide.matches ? (root.dataset.sheet || "memo") : "");

  // What the stage shows follows the other two modules (viewer.js shows the document, video.js the screen):
  // watched rather than called, so that neither needs to know about the layout.
  let shown = "camera";
  function followStage() {
    const now = !screenView.hidden ? "screen" : !viewer.hidden ? "document" : "camera";
    if (now === shown) return;
    shown = now;
    root.dataset.stage = now;
    if (now === "camera") {
      stageStatus.textContent = "";
      return;
    }
    stageStatus.textContent = now === "screen" ? t("A screen is being shared.") : t("A document is being shown.");
    // On a phone a new document or screen takes the screen at once: the open panel closes, unless the
    // guest is typing in the memo (then it stays, and the stage above it still shows the page).
    if (!wide.matches && role === "guest" && !root.querySelector(".sheet:not([hidden]) :focus")) openSheet("");
  }
  const watch = new MutationObserver(followStage);
  [viewer, screenView].forEach((node) => watch.observe(node, { attributes: true, attributeFilter: ["hidden"] }));
  followStage();

  if (role === "host") startDocumentPicker();
  else startTile(stage);
  return { openSheet };
}

/** 資料共有: the host's list of documents, a panel above the meeting menu. */
function startDocumentPicker() {
  const button = $("share-document");
  const panel = $("document-list-panel");
  const close = () => {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
  };
  button.addEventListener("click", () => {
    if (!panel.hidden) {
      close();
      return;
    }
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    panel.dispatchEvent(new Event("open"));
  });
  $("document-list-close").addEventListener("click", () => { close(); button.focus(); });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { // closes the list, not the document on show
      event.stopPropagation();
      close();
      button.focus();
    }
  });
  return { close };
}

const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];

/** The representative's camera over a shared page: a tile the guest drags (or sends corner to corner with
 * its button) off whatever part of the page it covers. It settles in the nearest corner. */
function startTile(stage) {
  const tile = $("panel-a");
  const move = $("tile-move");
  if (!tile || !move) return;
  const place = (corner) => {
    tile.dataset.corner = corner;
    tile.style.transform = "";
  };
  move.addEventListener("click", () => {
    const next = CORNERS[(CORNERS.indexOf(tile.dataset.corner || "bottom-right") + 1) % CORNERS.length];
    place(next);
  });
  let drag = null;
  tile.addEventListener("pointerdown", (event) => {
    if (stage.closest("[data-stage='camera']") || event.target.closest("button")) return;
    drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
    tile.setPointerCapture(event.pointerId);
  });
  tile.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    tile.style.transform = `translate(${event.clientX - drag.x}px, ${event.clientY - drag.y}px)`;
  });
  const drop = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    drag = null;
    const box = tile.getBoundingClientRect();
    const area = stage.getBoundingClientRect();
    const right = box.left + box.width / 2 > area.left + area.width / 2;
    const bottom = box.top + box.height / 2 > area.top + area.height / 2;
    place(`${bottom ? "bottom" : "top"}-${right ? "right" : "left"}`);
  };
  tile.addEventListener("pointerup", drop);
  tile.addEventListener("pointercancel", drop);
}

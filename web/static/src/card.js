// 名刺: the host's business card. In the call the guest opens it (the host sees a preview) and saves it as a
// vCard (from the server) or as a PNG drawn here on a canvas with this device's own fonts. The settings page
// (/card) uploads the photo and images as raw bodies.
import { ApiError } from "./api.js";
import { t } from "./i18n.js";

const FONT = '"Hiragino Sans", "Hiragino Kaku Gothic ProN", "Noto Sans JP", "Noto Sans CJK JP", "Yu Gothic", Meiryo, sans-serif';
const WIDTH = 1092; // 91 × 55 mm at 12 px/mm
const HEIGHT = 660;

function messageOf(error) {
  return error instanceof ApiError && error.message
    ? error.message
    : t("Could not connect. Please check your network and try again.");
}

async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "network", null, 0);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error?.code || "error", data.error?.message || null, 0);
  return data;
}

function loadImage(src) {
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => resolve(null); // the card is still drawn, without the photo
    image.src = src;
  });
}

function readingOf(card) {
  return [card.family_name_reading, card.given_name_reading].filter(Boolean).join(" ");
}

/** Draw the card on a canvas and resolve to a PNG blob. */
export async function drawCard(card) {
  const canvas = document.createElement("canvas");
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  ctx.strokeStyle = "#d0d5dd";
  ctx.lineWidth = 4;
  ctx.strokeRect(2, 2, WIDTH - 4, HEIGHT - 4);
  ctx.fillStyle = "#1d4ed8";
  ctx.fillRect(0, 0, 18, HEIGHT);

  let left = 70;
  const photo = card.photo ? await loadImage(card.photo) : null;
  if (photo) {
    const side = 260;
    const scale = Math.max(side / photo.naturalWidth, side / photo.naturalHeight);
    const w = photo.naturalWidth * scale;
    const h = photo.naturalHeight * scale;
    ctx.save();
    ctx.beginPath();
    ctx.rect(70, 200, side, side);
    ctx.clip();
    ctx.drawImage(photo, 70 + (side - w) / 2, 200 + (side - h) / 2, w, h);
    ctx.restore();
    left = 70 + side + 50;
  }
  const maxWidth = WIDTH - left - 60;
  ctx.textBaseline = "alphabetic";
  ctx.fillStyle = "#111827";
  ctx.font = `bold 40px ${FONT}`;
  ctx.fillText(card.company || "", left, 110, maxWidth);
  ctx.fillStyle = "#4b5563";
  ctx.font = `30px ${FONT}`;
  ctx.fillText(card.title || "", left, 170, maxWidth);
  ctx.font = `26px ${FONT}`;
  ctx.fillText(readingOf(card), left, 270, maxWidth);
  ctx.fillStyle = "#111827";
  ctx.font = `bold 72px ${FONT}`;
  ctx.fillText(card.full_name || "", left, 350, maxWidth);
  ctx.font = `30px ${FONT}`;
  let y = 470;
  if (card.phone) { ctx.fillText(`TEL ${card.phone}`, left, y, maxWidth); y += 52; }
  if (card.email) { ctx.fillText(`${card.email}`, left, y, maxWidth); }
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("toBlob"))), "image/png");
  });
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function fillCard(dialog, card) {
  const q = (name) => dialog.querySelector(`[data-card-${name}]`);
  const photo = q("photo");
  photo.hidden = !card.photo;
  if (card.photo) photo.src = card.photo;
  q("company").textContent = card.company;
  q("title").textContent = card.title;
  q("name").textContent = card.full_name;
  q("reading").textContent = readingOf(card);
  q("phone-row").hidden = !card.phone;
  q("phone").textContent = card.phone;
  q("phone").href = card.phone ? `tel:${card.phone.replace(/[^0-9+]/g, "")}` : "";
  q("email-row").hidden = !card.email;
  q("email").textContent = card.email;
  q("email").href = card.email ? `mailto:${card.email}` : "";
  const images = q("images");
  images.replaceChildren(...card.images.map((src) => Object.assign(document.createElement("img"), { src, alt: "" })));
  q("body").hidden = false;
}

export function startCard(_channel, role) {
  const button = document.getElementById("open-card");
  const dialog = document.getElementById("card-dialog");
  const room = document.getElementById("call")?.dataset.room;
  if (!button || !dialog || !room) return;
  const error = dialog.querySelector("[data-card-error]");
  let card = null;

  button.addEventListener("click", async () => {
    error.hidden = true;
    try {
      card = await getJSON(`/rooms/${room}/card`);
      fillCard(dialog, card);
    } catch (failure) {
      error.textContent = failure.status === 404 ? t("The business card is not available.") : messageOf(failure);
      error.hidden = false;
      dialog.querySelector("[data-card-body]").hidden = true;
    }
    if (!dialog.open) dialog.showModal();
  });
  dialog.querySelector("[data-card-close]").addEventListener("click", () => dialog.close());
  dialog.querySelector("[data-card-png]").addEventListener("click", async () => {
    if (!card) return;
    const name = (card.family_name + card.given_name) || card.company || "card";
    download(await drawCard(card), `${name}.png`);
  });
  dialog.dataset.role = role;
}

// --- the settings page -------------------------------------------------------------------------------------

async function postImage(slot, file) {
  let response;
  try {
    response = await fetch(`/api/card/images?slot=${encodeURIComponent(slot)}`, {
      method: "POST",
      headers: {
        "Content-Type": "application/octet-stream",
        Accept: "application/json",
        "X-CSRF-Token": document.body.dataset.csrf,
      },
      body: file,
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network", null, 0);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error?.code || "error", data.error?.message || null, 0);
  return data;
}

async function deleteImage(slot) {
  const response = await fetch(`/api/card/images/${encodeURIComponent(slot)}/delete`, {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRF-Token": document.body.dataset.csrf },
    credentials: "same-origin",
  }).catch(() => { throw new ApiError(0, "network", null, 0); });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error?.code || "error", data.error?.message || null, 0);
  return data;
}

function urlOf(card, slot) {
  return slot === "photo" ? card.photo : card.images.find((url) => url.includes(`/${slot}.jpg`)) || null;
}

export function startCardSettingsPage() {
  const page = document.getElementById("card-settings");
  if (!page) return;
  const maxBytes = Number(page.dataset.maxBytes);
  const error = document.getElementById("card-image-error");
  const show = (text) => { error.textContent = text; error.hidden = !text; };

  for (const item of page.querySelectorAll(".card-slot")) {
    const slot = item.dataset.slot;
    const preview = item.querySelector("[data-preview]");
    const input = item.querySelector("[data-upload]");
    const remove = item.querySelector("[data-delete]");
    const refresh = (card) => {
      const url = urlOf(card, slot);
      preview.hidden = !url;
      if (url) preview.src = url; else preview.removeAttribute("src");
      remove.hidden = !url;
    };
    input.addEventListener("change", async () => {
      show("");
      const file = input.files[0];
      if (!file) return;
      if (file.size > maxBytes) {
        show(t("The image is too large. Images of up to {max_mb} MB can be uploaded.", { max_mb: page.dataset.maxMb }));
        input.value = "";
        return;
      }
      input.disabled = true;
      try {
        refresh(await postImage(slot, file));
      } catch (failure) {
        show(messageOf(failure));
      } finally {
        input.disabled = false;
        input.value = "";
      }
    });
    remove.addEventListener("click", async () => {
      show("");
      try {
        refresh(await deleteImage(slot));
      } catch (failure) {
        show(messageOf(failure));
      }
    });
  }
}

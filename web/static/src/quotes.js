// Quotes: the host imports items from a sheet (raw body, like documents); the customer's total follows the
// checked items before confirming (integer yen, tax rounded down as the server does: deals/quotes.py).
import { ApiError } from "./api.js";
import { t } from "./i18n.js";

async function importSheet(quoteId, file) {
  let response;
  try {
    response = await fetch(`/api/quotes/${quoteId}/import?${new URLSearchParams({ name: file.name })}`, {
      method: "POST",
      headers: {
        "X-CSRF-Token": document.body.dataset.csrf,
        Accept: "application/json",
        "Content-Type": "application/octet-stream",
      },
      body: file,
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network", null, 0);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    const failure = new ApiError(response.status, error.code || "error", error.message || null, 0);
    failure.rows = error.rows || [];
    throw failure;
  }
  return data;
}

export function startQuotePage() {
  const form = document.getElementById("import-form");
  if (!form) return;
  const input = document.getElementById("import-file");
  const status = document.getElementById("import-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = input.files[0];
    if (!file) return;
    status.replaceChildren(t("Importing…"));
    try {
      await importSheet(form.dataset.quote, file);
      location.assign(`${location.pathname}?done=imported`);
    } catch (error) {
      const message = error.message || t("Could not connect. Please check your network and try again.");
      const list = document.createElement("ul");
      list.id = "import-errors";
      for (const row of error.rows || []) {
        const item = document.createElement("li");
        item.textContent = t("Row {row}, column {column} ({field}): {reason}", row);
        item.dataset.row = row.row;
        item.dataset.column = row.column;
        list.append(item);
      }
      const head = document.createElement("p");
      head.className = "error";
      head.setAttribute("role", "alert");
      head.textContent = message;
      status.replaceChildren(head, list);
    }
  });
}

export function startQuoteAnswerPage() {
  const section = document.getElementById("quote-answer");
  const total = document.getElementById("answer-total");
  if (!section || !total) return;
  const rate = Number(section.dataset.taxRate);
  const mode = section.dataset.taxMode;
  const boxes = [...section.querySelectorAll('input[name="item"]')];
  const update = () => {
    const subtotal = boxes.filter((box) => box.checked).reduce((sum, box) => sum + BigInt(box.dataset.amount), 0n);
    const sum = mode === "exclusive" ? subtotal + (subtotal * BigInt(rate)) / 100n : subtotal;
    total.textContent = sum.toLocaleString("ja-JP");
    total.dataset.total = sum.toString();
  };
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
}

import { t } from "./i18n.js";

/** The guest page. Issuing numbers arrives with the joining feature; until then say so plainly. */
export function startGuestPage() {
  const button = document.getElementById("issue-number");
  const status = document.getElementById("guest-status");
  if (!button || !status) return;
  button.addEventListener("click", () => {
    status.textContent = t("Connecting is not available yet.");
  });
}

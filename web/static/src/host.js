import { ApiError, postJSON } from "./api.js";
import { t } from "./i18n.js";

/** Four one-digit boxes: typing moves on, Backspace moves back, pasting "1234" fills them all. */
function digitBoxes(boxes, onComplete) {
  const value = () => boxes.map((box) => box.value).join("");
  boxes.forEach((box, index) => {
    box.addEventListener("input", () => {
      box.value = box.value.replace(/\D/g, "").slice(-1);
      if (box.value && index < boxes.length - 1) boxes[index + 1].focus();
      if (value().length === boxes.length) onComplete(value());
    });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Backspace" && !box.value && index > 0) boxes[index - 1].focus();
    });
    box.addEventListener("paste", (event) => {
      const digits = (event.clipboardData?.getData("text") || "").replace(/\D/g, "").slice(0, boxes.length);
      if (!digits) return;
      event.preventDefault();
      boxes.forEach((b, i) => { b.value = digits[i] || ""; });
      boxes[Math.min(digits.length, boxes.length - 1)].focus();
      if (digits.length === boxes.length) onComplete(value());
    });
  });
  return {
    value,
    clear() { boxes.forEach((b) => { b.value = ""; }); boxes[0].focus(); },
  };
}

function showError(node, error) {
  node.textContent = error instanceof ApiError && error.message
    ? error.message
    : t("Could not connect. Please check your network and try again.");
  node.hidden = false;
}

export function startHostPage() {
  const form = document.getElementById("number-form");
  if (!form) return;
  const error = document.getElementById("connect-error");
  const button = document.getElementById("start-meeting");
  const options = () => ({
    camera: document.getElementById("opt-camera").checked,
    recording: document.getElementById("opt-recording").checked,
  });
  const boxes = digitBoxes([...form.querySelectorAll("input.digit")], () => button.focus());
  boxes.clear();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (boxes.value().length !== 4) {
      showError(error, new ApiError(400, "invalid", t("Enter the 4-digit connect number.")));
      return;
    }
    button.disabled = true;
    try {
      const room = await postJSON("/api/rooms", { number: boxes.value(), ...options() });
      location.assign(room.url);
    } catch (failure) {
      showError(error, failure);
      boxes.clear();
    } finally {
      button.disabled = false;
    }
  });

  const smsForm = document.getElementById("sms-form");
  const smsError = document.getElementById("sms-error");
  smsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    smsError.hidden = true;
    const send = document.getElementById("sms-send");
    send.disabled = true;
    try {
      const room = await postJSON("/api/rooms/link", { phone: document.getElementById("sms-phone").value, ...options() });
      location.assign(room.url);
    } catch (failure) {
      showError(smsError, failure);
    } finally {
      send.disabled = false;
    }
  });
}

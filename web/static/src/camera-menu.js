// The host's camera menu (カメラメニュー above panel A): camera choice and virtual background, reload,
// brightness, the customer's camera (stop / ask) and high-quality mode for a customer on a phone.
import { N_, t } from "./i18n.js";

// What the host is told about the customer's camera: the answer to a request, or its state (media.peer).
const GUEST_CAMERA = {
  on: N_("The customer started their camera."),
  declined: N_("The customer declined to start their camera."),
  blocked: N_("The customer's browser blocks the camera in its settings. The customer is being shown how to allow it."),
  none: N_("The customer's device has no camera that can be used."),
};

const $ = (id) => document.getElementById(id);

function togglePanel(button, panel) {
  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
  });
}

export function startCameraMenu({ channel, camera, link, reopen, render }) {
  const status = $("guest-camera-status");
  const backgroundStatus = $("background-status");

  async function fillCameras() {
    const select = $("camera-select");
    const cameras = await camera.cameras();
    select.replaceChildren(...cameras.map((device, index) => {
      const option = new Option(device.label || t("Camera {number}", { number: index + 1 }), device.deviceId);
      option.selected = device.deviceId === camera.deviceId;
      return option;
    }));
    select.disabled = cameras.length < 2;
  }

  togglePanel($("camera-settings-button"), $("camera-settings"));
  togglePanel($("brightness-button"), $("brightness-panel"));
  $("camera-settings-button").addEventListener("click", fillCameras);
  navigator.mediaDevices?.addEventListener?.("devicechange", fillCameras);

  $("camera-select").addEventListener("change", async (event) => {
    await camera.use(event.target.value); // replaceTrack on the same sender: no new offer
    render();
  });

  const backgrounds = document.querySelectorAll('input[name="background"]');
  const choose = (value) => backgrounds.forEach((radio) => { radio.checked = radio.value === value; });
  async function setBackground(value) {
    $("background-image-row").hidden = value !== "image";
    if (value === "image" && !camera.effects.image) {
      backgroundStatus.textContent = t("Choose an image for the background.");
      return;
    }
    let message = "";
    if (value !== "none") {
      backgroundStatus.textContent = t("Preparing the virtual background…");
      try {
        await camera.effects.enableSegmenter();
      } catch {
        message = t("The virtual background does not work in this browser.");
        choose("none");
        value = "none";
      }
    }
    backgroundStatus.textContent = message;
    camera.effects.background = value;
    camera.refresh();
    render();
  }
  backgrounds.forEach((radio) => radio.addEventListener("change", () => setBackground(radio.value)));
  $("background-image").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      camera.effects.image = await createImageBitmap(file);
    } catch {
      backgroundStatus.textContent = t("This image cannot be used. Please choose a JPEG or PNG image.");
      return;
    }
    backgroundStatus.textContent = "";
    setBackground("image");
  });

  $("brightness").addEventListener("input", (event) => {
    const percent = Number(event.target.value);
    $("brightness-value").textContent = `${percent}%`;
    camera.effects.brightness = percent / 100;
    camera.refresh();
    render();
  });

  // 更新: a new media session for this side (fresh peer connection, offered with restart: true).
  $("media-reload").addEventListener("click", async () => {
    // The camera is tried again if it was lost or refused, not if the host turned it off on purpose.
    if (camera.lost || !["on", "off", "paused"].includes(camera.state)) await reopen();
    link.restart();
  });

  $("guest-camera-stop").addEventListener("click", () => {
    channel.send({ type: "camera.request", action: "stop" });
    status.textContent = t("You stopped the customer's camera.");
  });
  $("guest-camera-request").addEventListener("click", () => {
    channel.send({ type: "camera.request", action: "start" });
    status.textContent = t("Asking the customer to start their camera…");
  });
  channel.on("camera.reply", (message) => {
    status.textContent = t(GUEST_CAMERA[message.camera] ?? GUEST_CAMERA.declined);
  });

  $("high-quality").addEventListener("change", (event) => {
    channel.send({ type: "media.quality", high: event.target.checked });
  });
  channel.on("media.quality", (message) => { $("high-quality").checked = message.high; });

  let shown = null; // the guest camera state last explained, so a later reply is not overwritten
  return {
    /** The guest's camera state changed: only the action that makes sense is offered, and why there is no
     * camera is said as it is (declined, blocked by the browser, or none). */
    update(peer) {
      $("guest-camera-stop").disabled = !(peer.camera === "on" || peer.camera === "paused");
      $("guest-camera-request").disabled = peer.camera === null || peer.camera === "on" || peer.camera === "paused";
      if (peer.camera !== shown) {
        const before = shown;
        shown = peer.camera;
        if (peer.camera === "declined") status.textContent = t("The customer chose not to use the camera.");
        else if (peer.camera === "blocked" || peer.camera === "none") status.textContent = t(GUEST_CAMERA[peer.camera]);
        else if (peer.camera === "on" && ["declined", "blocked", "none"].includes(before)) status.textContent = t(GUEST_CAMERA.on);
      }
    },
  };
}

// This side's camera: open, switch, stop, capture size; what it sends goes through Effects (brightness,
// virtual background). Its state is the protocol's (CameraState): on, off, paused, declined, blocked, none.
import { Effects } from "./effects.js";
import { CameraState } from "./protocol.js";

const NORMAL = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } };
const HIGH = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 } };
export const NORMAL_BITRATE = 600_000;
export const HIGH_BITRATE = 2_000_000;

/** getUserMedia needs a secure context (HTTPS, or localhost); over plain http the browser hides it. */
export function mediaAllowed() {
  return window.isSecureContext && Boolean(navigator.mediaDevices?.getUserMedia);
}

/** The camera permission before asking: "granted", "denied", "prompt", or null when the browser won't say. */
async function permissionBefore() {
  try {
    return (await navigator.permissions.query({ name: "camera" })).state;
  } catch {
    return null;
  }
}

/** Why getUserMedia failed, in the protocol's words. A refusal is "blocked" when the browser refused without
 * asking (the permission was already denied: its settings block the camera), and "declined" when the person
 * was asked just now and said no. */
export function whyNoCamera(error, before) {
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return before === "prompt" ? CameraState.DECLINED : CameraState.BLOCKED;
  }
  return CameraState.NONE; // no camera (NotFoundError, OverconstrainedError), or held by another app
}

export class LocalCamera {
  /** @param {(track: MediaStreamTrack|null) => void} onTrack  the track to send (and preview) changed */
  constructor(onTrack) {
    this.onTrack = onTrack;
    this.effects = new Effects();
    this.raw = null;
    this.deviceId = "";
    this.high = false;
    this.state = mediaAllowed() ? "off" : "none";
    this.track = null;
    this.lost = false; // the OS ended the camera (not us): reopened when the page is back in front
  }

  /** Open the camera (again). Resolves with the new state. */
  async start() {
    if (!mediaAllowed()) return (this.state = "none");
    const video = { ...(this.high ? HIGH : NORMAL), ...(this.deviceId ? { deviceId: { exact: this.deviceId } } : {}) };
    if (this.raw && this.raw.getSettings().deviceId === this.deviceId) {
      // The same camera at another size: while it is open, the browser hands back its running capture size.
      this.raw.stop();
    }
    const before = await permissionBefore();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (error) {
      if (this.deviceId && error.name === "OverconstrainedError") {
        this.deviceId = ""; // the chosen camera was unplugged: any camera
        return this.start();
      }
      this.state = whyNoCamera(error, before);
      return this.state;
    }
    const raw = stream.getVideoTracks()[0];
    this.lost = false;
    this.#replaceRaw(raw);
    this.deviceId = raw.getSettings().deviceId || this.deviceId;
    this.state = "on";
    return this.state;
  }

  /** Switch to another camera: the sender's track is replaced, the connection is not renegotiated. */
  async use(deviceId) {
    this.deviceId = deviceId;
    if (this.state === "on" || this.state === "paused") return this.start();
    return this.state;
  }

  stop() {
    this.#replaceRaw(null);
    if (this.state === "on" || this.state === "paused") this.state = "off";
    return this.state;
  }

  /** High-quality mode for a phone: 1280×720 capture (the caller raises the sender's bitrate). The camera is
   * reopened, because a browser cannot raise the size of a capture that is already running. */
  async setHigh(high) {
    this.high = high;
    if (this.raw) await this.start();
  }

  /** Re-run the effects after brightness or background changed. */
  refresh() {
    this.#publish();
  }

  async cameras() {
    if (!navigator.mediaDevices?.enumerateDevices) return [];
    return (await navigator.mediaDevices.enumerateDevices()).filter((device) => device.kind === "videoinput");
  }

  #replaceRaw(raw) {
    const old = this.raw;
    this.raw = raw;
    if (raw) raw.addEventListener("ended", () => { if (this.raw === raw) this.#ended(); });
    this.#publish();
    if (old && old !== raw) old.stop(); // after the sender moved on, so the peer never sees a gap
  }

  #publish() {
    const track = this.effects.process(this.raw);
    if (track !== this.track) {
      this.track = track;
      this.onTrack(track);
    }
  }

  #ended() {
    // The OS took the camera away (another app, a phone call): report it off rather than a frozen frame.
    this.raw = null;
    this.state = "off";
    this.lost = true;
    this.#publish();
    this.onEnded?.();
  }
}

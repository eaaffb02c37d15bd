// Video is optional (docs/protocol.md, "Video optional"): the voice is on the phone, and what the customer
// must see is the documents and the memo. When this browser has no WebRTC, its peer connection does not reach
// "connected" in time, or the camera is refused, the call goes on without video; this side says so
// (media.video) and the other side is told plainly. A network problem is retried in the background when the
// network changes and on 更新.
import { N_, t } from "./i18n.js";
import { CameraState, VideoProblem } from "./protocol.js";

/** Whether this browser can make a peer connection at all (WebKitGTK, for one, is built without WebRTC). */
export function webrtcSupported() {
  return typeof window.RTCPeerConnection === "function";
}

// What this side is told about its own video: a short explanation, not an error.
const OWN_TEXT = {
  [VideoProblem.UNSUPPORTED]: N_("This browser cannot show video. The documents and the memo work as usual, and you talk on the phone."),
  [VideoProblem.NETWORK]: N_("Video cannot connect on this network just now. The documents and the memo work as usual; video is tried again by itself."),
};

// The host, about the customer's video.
const PEER_REASON = {
  [VideoProblem.UNSUPPORTED]: N_("Reason: the customer's browser does not support video."),
  [VideoProblem.NETWORK]: N_("Reason: the video could not connect on the customer's network."),
  [VideoProblem.CAMERA]: N_("Reason: the customer's camera is refused or missing."),
};

const NO_CAMERA = new Set([CameraState.BLOCKED, CameraState.NONE]);

export class VideoAvailability {
  /**
   * @param {object} options
   * @param {"host"|"guest"} options.role
   * @param {import("./peer.js").MediaLink} options.link
   * @param {(message: object) => void} options.send  sends a room channel frame
   * @param {number} options.connectSeconds  VIDEO_CONNECT_SECONDS: how long an offer may take to connect
   * @param {() => void} [options.onChange]  the reason changed (the panels redraw)
   */
  constructor({ role, link, send, connectSeconds, onChange = () => {} }) {
    this.onChange = onChange;
    this.role = role;
    this.link = link;
    this.send = send;
    this.connectMs = Math.max(1, connectSeconds || 10) * 1000;
    this.supported = webrtcSupported();
    this.network = false;
    this.camera = false;
    this.timer = null;
    this.told = undefined; // the reason last sent (undefined: nothing sent yet)
    this.retries = 0; // background and 更新 retries (the tests read it)
    document.getElementById("video-retry")?.addEventListener("click", () => this.retry());
    // The network changed (Wi-Fi to mobile data, back online): a connection that failed may work now.
    window.addEventListener("online", () => this.retry());
    navigator.connection?.addEventListener?.("change", () => this.retry());
  }

  /** No video from the other side can reach this page (no WebRTC, or no connection): camera aside. */
  get blind() {
    return !this.supported || this.network;
  }

  /** Why there is no video (a VideoProblem), or null when it works. */
  get reason() {
    if (!this.supported) return VideoProblem.UNSUPPORTED;
    if (this.network) return VideoProblem.NETWORK;
    if (this.camera) return VideoProblem.CAMERA;
    return null;
  }

  /** A fresh offer is on its way: unless it connects within the bound, video is unavailable (network). */
  expectConnection() {
    clearTimeout(this.timer);
    if (!this.supported) return;
    this.timer = setTimeout(() => {
      if (this.link.connected()) return;
      this.network = true;
      this.report();
    }, this.connectMs);
  }

  /** The peer connection's state changed (MediaLink onState). */
  connectionState(state) {
    if (state !== "connected") return;
    clearTimeout(this.timer);
    this.network = false;
    this.report();
  }

  /** This side's camera state changed: refused (blocked) or missing is a reason, declined is a choice. */
  cameraState(state) {
    this.camera = NO_CAMERA.has(state);
    this.report();
  }

  /** Try the peer connection again, unless it works (the network changed, or 更新). */
  retry() {
    if (!this.supported || this.link.connected()) return;
    this.retries += 1;
    this.link.restart();
    this.expectConnection();
  }

  /** Show this side's explanation, and tell the other side when the reason changed (always when forced:
   * every welcome, since the room forgets a side that left). */
  report(force = false) {
    const reason = this.reason;
    const own = OWN_TEXT[reason];
    if (this.role === "guest") this.#show(own ? t(own) : "", reason === VideoProblem.NETWORK, reason);
    else document.getElementById("video-status").textContent = own ? t(own) : "";
    if (!force && reason === this.told) return;
    if (reason !== this.told) this.onChange();
    this.told = reason;
    this.send({ type: "media.video", available: reason === null, reason });
  }

  /** media.video from the other side: the host is told why the customer has no video. */
  peer(message) {
    if (this.role !== "host" || message.role !== "guest") return;
    const reason = PEER_REASON[message.reason];
    const notice = t("Video is not available in the customer's environment (the documents and the memo can be used).");
    this.#show(message.available ? "" : [notice, reason ? t(reason) : ""].join(" ").trim(), false, message.reason);
  }

  #show(text, retry, reason) {
    const box = document.getElementById("video-unavailable");
    if (!box) return;
    box.dataset.reason = text ? reason ?? "" : "";
    document.getElementById("video-unavailable-text").textContent = text;
    const button = document.getElementById("video-retry");
    if (button) button.hidden = !retry;
    box.hidden = !text;
  }
}

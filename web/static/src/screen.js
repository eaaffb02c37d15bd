// 画面共有: this side's screen on the second video transceiver (getDisplayMedia, then replaceTrack).
import { N_ } from "./i18n.js";
import { mediaAllowed } from "./camera.js";

/** Phones and tablets: their browsers cannot capture the screen (or only with a picker that breaks the call). */
export function isMobile() {
  if (navigator.userAgentData?.mobile) return true;
  return /Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent)
    || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1); // iPadOS asks for the desktop site
}

/** Why this browser cannot share its screen, or null when it can (an untranslated message id). */
export function screenShareUnavailable() {
  if (isMobile()) return N_("Screen sharing is not available on smartphones and tablets, because their browsers cannot share the screen. Please use a computer to share your screen.");
  if (!mediaAllowed()) return N_("Screen sharing needs a secure (HTTPS) connection to this site.");
  if (!navigator.mediaDevices?.getDisplayMedia) return N_("This browser cannot share the screen. Please use a recent Chrome, Edge, Firefox or Safari on a computer.");
  return null;
}

export class ScreenShare {
  /** @param {(track: MediaStreamTrack|null) => void} onTrack */
  constructor(onTrack) {
    this.onTrack = onTrack;
    this.track = null;
  }

  get on() {
    return this.track !== null;
  }

  /** Ask the user for a screen; resolves true when sharing started (false when the user cancelled). */
  async start() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch {
      return false;
    }
    const track = stream.getVideoTracks()[0];
    track.contentHint = "detail"; // text stays sharp rather than smooth
    // The browser's own "stop sharing" bar ends the track without us.
    track.addEventListener("ended", () => { if (this.track === track) this.stop(); });
    this.track = track;
    this.onTrack(track);
    return true;
  }

  stop() {
    const track = this.track;
    this.track = null;
    this.onTrack(null);
    track?.stop();
  }
}

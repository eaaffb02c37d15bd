// レコログ on the call page: 「録画中」 for both sides (recording.state), the host's stop/restart button and its
// notices (recording.notice), and the guest's acknowledgement that it was shown (recording.seen).
import { N_, t } from "./i18n.js";

const NOTICES = {
  ten_minutes_left: N_("Recording stops in 10 minutes (the 120-minute limit). The call goes on."),
  limit_reached: N_("Recording stopped at its 120-minute limit. The call goes on."),
};

function deviceSummary() {
  const agent = navigator.userAgent;
  const device = /iPhone|iPad/.test(agent) ? "iOS" : /Android/.test(agent) ? "Android" : /Mac OS X/.test(agent) ? "macOS" : /Windows/.test(agent) ? "Windows" : /Linux/.test(agent) ? "Linux" : "other";
  const browser = /Edg\//.test(agent) ? "Edge" : /Chrome\//.test(agent) ? "Chrome" : /Firefox\//.test(agent) ? "Firefox" : /Safari\//.test(agent) ? "Safari" : "other";
  return `${browser} / ${device} / ${screen.width}x${screen.height}`.slice(0, 200);
}

export function startRecording(channel, role) {
  const badge = document.getElementById("recording-badge");
  const button = document.getElementById("recording-switch");
  const notice = document.getElementById("recording-notice");
  let seen = false;
  let running = false;
  const tellSeen = () => {
    if (role !== "guest" || seen || badge.hidden) return;
    seen = true;
    channel.send({ type: "recording.seen", device: deviceSummary() });
  };
  // The room sends recording.state right after its welcome when recording is switched on.
  channel
    .on("recording.state", (message) => {
      running = message.recording;
      badge.hidden = !(message.armed || message.recording);
      badge.dataset.recording = running ? "1" : "";
      badge.textContent = running ? badge.dataset.recordingText : badge.dataset.armedText;
      if (button) {
        button.hidden = !message.armed || message.stopped === "limit";
        button.textContent = running ? button.dataset.stopText : button.dataset.startText;
      }
      if (notice && message.stopped === "failed") notice.hidden = true; // the error frame says why
      tellSeen();
    })
    .on("recording.notice", (message) => {
      if (!notice) return;
      notice.textContent = t(NOTICES[message.notice]);
      notice.hidden = false;
    });
  button?.addEventListener("click", () => channel.send({ type: "recording.switch", on: !running }));
}

// 映像 in the call page: panels A and B, screen share in place of the document, optional browser audio, and
// the phone's habits (inline muted autoplay, a tap to resume, a paused camera while in the background).
import { N_, t } from "./i18n.js";
import { HIGH_BITRATE, LocalCamera, NORMAL_BITRATE, mediaAllowed } from "./camera.js";
import { startCameraMenu } from "./camera-menu.js";
import { MediaLink, Slot } from "./peer.js";
import { ScreenShare, isMobile, screenShareUnavailable } from "./screen.js";
import { CameraState } from "./protocol.js";
import { VideoAvailability } from "./video-optional.js";

const $ = (id) => document.getElementById(id);

/** A button's words, leaving its icon be (the menu's buttons have one). */
function setLabel(button, text) {
  (button.querySelector("[data-label]") ?? button).textContent = text;
}

// What panel A shows of the other side, by its camera state (null: nothing heard from it yet).
const PEER_OVERLAY = {
  host: {
    null: N_("Waiting for the customer's video…"),
    off: N_("The customer's camera is stopped."),
    paused: N_("Camera paused"),
  },
  guest: {
    null: N_("Waiting for the representative's video…"),
    off: N_("The representative's camera is off."),
    declined: N_("The representative's camera is off."),
    blocked: N_("The representative's camera is off."),
    none: N_("The representative's camera is off."),
    paused: N_("Camera paused"),
  },
};

// No camera on that side, and why: the host's own camera then fills panel A.
const NO_CAMERA = new Set([CameraState.DECLINED, CameraState.BLOCKED, CameraState.NONE]);

/** Which of the guest's "how to allow the camera" instructions fits this device. */
export function platform(userAgent = navigator.userAgent, touchPoints = navigator.maxTouchPoints) {
  if (/iPhone|iPad|iPod/.test(userAgent) || (/Macintosh/.test(userAgent) && touchPoints > 1)) return "ios";
  if (/Android/.test(userAgent)) return "android";
  return "desktop";
}

function parseIce(text) {
  try {
    const servers = JSON.parse(text || "[]");
    return Array.isArray(servers) ? servers : [];
  } catch {
    return [];
  }
}

/** Playback that survives phones: retried on the next tap when the browser refuses or stalls it. */
const waiting = new Set();
function play(media) {
  if (!media.srcObject) return;
  media.play().then(() => waiting.delete(media), () => waiting.add(media));
}
function resumeAll() {
  waiting.forEach(play);
}

function attach(media, track) {
  if ((media.srcObject?.getTracks()[0] ?? null) === track) return;
  media.srcObject = track ? new MediaStream([track]) : null;
  play(media);
}

export function startVideo(channel, role, root) {
  const other = role === "host" ? "guest" : "host";
  const peer = { camera: null, screen: false, audio: false };
  const remote = [null, null, null];
  const mobile = isMobile();
  let audioTrack = null;
  let started = false;
  let menu = null; // the host's camera menu

  const link = new MediaLink({
    iceServers: parseIce(root.dataset.ice),
    send: (message) => channel.send(message),
    onRemoteTrack: (slot, track) => { remote[slot] = track; render(); },
    onState: (state) => {
      if (role === "host" || !availability.network) {
        $("video-status").textContent = ["disconnected", "failed"].includes(state) ? t("Reconnecting the video…") : "";
      }
      availability.connectionState(state);
    },
  });
  // Without WebRTC, or without a connection in time, the call goes on without video (video-optional.js).
  const availability = new VideoAvailability({
    role, link, send: (message) => channel.send(message), connectSeconds: Number(root.dataset.videoConnect),
    onChange: () => render(),
  });
  link.maxBitrate = NORMAL_BITRATE;
  if (availability.supported) link.prepare(); // the offer is made while the channel connects; welcome sends it
  const camera = new LocalCamera((track) => { link.setTrack(Slot.CAMERA, track); render(); });
  const screen = new ScreenShare((track) => { link.setTrack(Slot.SCREEN, track); sendState(); render(); });
  camera.onEnded = () => { sendState(); render(); };

  // A phone in the background stops its camera: say so, rather than leave the other side a frozen frame.
  const cameraState = () => (mobile && camera.state === "on" && document.visibilityState === "hidden" ? "paused" : camera.state);
  const sendState = () => channel.send({ type: "media.state", camera: cameraState(), screen: screen.on, audio: audioTrack !== null });

  function notice(text) {
    $("video-notice").textContent = text;
    $("video-notice").hidden = !text;
  }

  function showPanel(letter, track, { label, overlay = "", mirror = false }) {
    attach($(`video-${letter}`), track);
    $(`video-${letter}`).classList.toggle("mirror", mirror);
    $(`overlay-${letter}`).textContent = overlay;
    $(`overlay-${letter}`).hidden = !overlay;
    $(`label-${letter}`).textContent = label;
  }

  function render() {
    const own = camera.state === "on" ? null : t(camera.state === "off" ? "Your camera is off." : "Your camera is unavailable.");
    const peerOverlay = PEER_OVERLAY[role][peer.camera] ?? (peer.camera === "on" ? "" : PEER_OVERLAY[role].null);
    const peerLabel = role === "host" ? t("Customer") : t("Representative");
    // The host without a guest camera sees itself in A, and B goes away (the help page's 接続中画面).
    const selfInA = role === "host" && NO_CAMERA.has(peer.camera);
    if (selfInA) {
      showPanel("a", camera.track, { label: t("You"), overlay: own ?? "", mirror: true });
      $("panel-b").hidden = true;
      attach($("video-b"), null);
    } else {
      const overlay = availability.blind ? t("Video is not available") : t(peerOverlay);
      showPanel("a", remote[Slot.CAMERA], { label: peerLabel, overlay });
      const ownHidden = role === "guest" && NO_CAMERA.has(camera.state);
      $("panel-b").hidden = ownHidden;
      showPanel("b", ownHidden ? null : camera.track, { label: t("You"), overlay: own ?? "", mirror: true });
    }
    $("panels").dataset.layout = selfInA ? "single" : "pair";
    const sending = camera.state === CameraState.ON || camera.state === CameraState.PAUSED;
    setLabel($("own-camera"), sending ? t("Turn camera off") : t("Turn camera on"));
    $("own-camera").setAttribute("aria-pressed", String(sending));
    $("own-camera").hidden = !mediaAllowed();

    // A shared screen takes the document's place, for both sides; the other side's screen comes first.
    const view = $("screen-view");
    const shown = peer.screen ? remote[Slot.SCREEN] : screen.track;
    view.hidden = !shown;
    $("stage").classList.toggle("screen-on", Boolean(shown));
    attach($("screen-video"), shown);
    $("screen-label").textContent = peer.screen
      ? (role === "host" ? t("The customer is sharing their screen.") : t("The representative is sharing their screen."))
      : t("You are sharing your screen.");
    setLabel($("screen-share"), screen.on ? t("Stop sharing the screen") : t("Share screen"));
    $("screen-share").setAttribute("aria-pressed", String(screen.on));

    attach($("remote-audio"), remote[Slot.AUDIO]);
    $("remote-audio").muted = audioTrack === null; // the other side's browser audio plays only with ours on
    const audio = $("browser-audio");
    audio.textContent = audioTrack ? t("Browser audio: on") : t("Browser audio: off");
    audio.setAttribute("aria-pressed", String(audioTrack !== null));
    if (audioTrack) {
      $("audio-status").textContent = peer.audio ? t("Browser audio is on for both of you.")
        : t("Your microphone is on. The other side hears you once they turn browser audio on too.");
    } else {
      $("audio-status").textContent = t("Voice stays on the phone. Turn browser audio on only if you cannot talk on the phone.");
    }
    menu?.update(peer);
  }

  /** Why there is no camera, and for the guest how to allow it in this browser (blocked or declined). */
  function explain(state) {
    const help = $("camera-help");
    if (help) help.hidden = true;
    if (!mediaAllowed()) {
      notice(t("The camera cannot be used: this page was opened over an unencrypted connection (http://), and browsers allow the camera only on secure (https://) pages. You can still see the other side's video."));
    } else if (state === CameraState.NONE) {
      notice(t("No camera was found. The other side can still see your shared screen and documents."));
    } else if (state === CameraState.BLOCKED || state === CameraState.DECLINED) {
      notice(state === CameraState.BLOCKED
        ? t("This browser's settings block the camera for this page.")
        : t("The camera was not allowed."));
      if (help) {
        $("camera-help-lead").textContent = t("To show your camera, allow it for this site as follows. The meeting goes on either way.");
        help.querySelectorAll("details").forEach((details) => { details.open = details.dataset.platform === platform(); });
        help.hidden = false;
      } else {
        notice(t("The camera is not allowed for this page. You can allow it from the camera icon in the browser's address bar, then press “Turn camera on”."));
      }
    } else {
      notice("");
    }
  }

  async function openCamera() {
    const refused = camera.state === CameraState.BLOCKED || camera.state === CameraState.DECLINED;
    const state = await camera.start();
    explain(state);
    sendState();
    render();
    availability.cameraState(state);
    // Without the camera permission Chrome offered only mDNS names for this browser, which some networks
    // cannot resolve: a camera allowed later (the help's steps) gets a fresh connection with real addresses.
    if (refused && state === CameraState.ON && started && availability.supported && !link.connected()) {
      link.restart();
      availability.expectConnection();
    }
    return state;
  }

  // カメラをオン / オフ: each side's own camera. Off sends nothing at all (replaceTrack(null)).
  $("own-camera").addEventListener("click", async () => {
    if (camera.state === CameraState.ON || camera.state === CameraState.PAUSED) {
      camera.stop();
      explain(camera.state);
      sendState();
      render();
    } else {
      await openCamera();
    }
  });

  // The screen share button, or why there is none. A phone has no use for either: its guest is never told
  // about a feature its browser lacks.
  const unavailable = screenShareUnavailable();
  $("screen-share").hidden = Boolean(unavailable);
  if (unavailable && !mobile) {
    $("screen-unavailable").textContent = t(unavailable);
    $("screen-unavailable").hidden = false;
  }
  $("screen-share").addEventListener("click", () => (screen.on ? screen.stop() : screen.start()));

  $("browser-audio").addEventListener("click", async () => {
    if (audioTrack) {
      audioTrack.stop();
      audioTrack = null;
    } else if (mediaAllowed()) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
        audioTrack = stream.getAudioTracks()[0];
      } catch {
        notice(t("The microphone is not allowed for this page, so browser audio stays off."));
      }
    } else {
      notice(t("Browser audio needs a secure (https://) connection to this site."));
    }
    await link.setTrack(Slot.AUDIO, audioTrack);
    sendState();
    render();
    play($("remote-audio"));
  });

  menu = role === "host" ? startCameraMenu({ channel, camera, link, reopen: openCamera, render }) : null;

  if (role === "guest") {
    const ask = $("camera-ask");
    const answer = async (yes) => {
      ask.close();
      // The host learns why there is no camera: the customer's no, the browser's block, or no camera at all.
      const state = yes ? await openCamera() : CameraState.DECLINED;
      channel.send({ type: "camera.reply", camera: state === CameraState.ON || NO_CAMERA.has(state) ? state : CameraState.DECLINED });
    };
    $("camera-ask-yes").addEventListener("click", () => answer(true));
    $("camera-ask-no").addEventListener("click", () => answer(false));
    channel.on("camera.request", (message) => {
      if (message.action === "stop") {
        camera.stop();
        notice(t("The representative stopped your camera."));
        sendState();
        render();
      } else if (camera.state !== "on" && !ask.open) {
        ask.showModal();
      }
    });
    channel.on("media.quality", async (message) => {
      // High-quality mode: a sharper picture of a phone's camera, at a higher bitrate.
      await camera.setHigh(message.high);
      await link.setMaxBitrate(message.high ? HIGH_BITRATE : NORMAL_BITRATE);
    });
  }

  channel
    .on("media.answer", (message) => link.answer(message.sdp))
    .on("media.video", (message) => availability.peer(message))
    .on("media.peer", (message) => {
      if (message.role !== other) return;
      Object.assign(peer, { camera: message.camera, screen: message.screen, audio: message.audio });
      render();
    });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      if (camera.lost) openCamera(); // the phone took the camera away while in the background
      root.querySelectorAll("video, audio").forEach(play);
    }
    if (mobile) sendState();
  });
  // Phones may refuse or stall playback until the user touches the page: the next tap resumes it.
  ["pointerdown", "touchend", "keydown"].forEach((type) => document.addEventListener(type, resumeAll, { passive: true }));
  root.querySelectorAll("video").forEach((media) => media.addEventListener("pause", () => {
    if (media.srcObject && document.visibilityState === "visible") play(media);
  }));

  // 「カメラを使用する」 chosen by the host before connecting: without it, no camera starts by itself.
  if (root.dataset.camera) {
    openCamera();
  } else {
    notice(t("This meeting starts with the cameras off. Press “Turn camera on” to show yours."));
    sendState();
  }
  render();

  // For the browser tests: the connection and the camera.
  window.tsunaguMedia = { link, camera, screen, peer, availability, framesDecoded: (slot = 0) => link.framesDecoded(slot) };
  // 更新 (the host's camera menu) offers afresh: that offer, too, must connect in time.
  $("media-reload")?.addEventListener("click", () => availability.expectConnection());

  let lastHome;
  return {
    /** Every (re)connect of the room channel: tell our state; (re)open the media connection if needed.
     * ``home``: the room's home incarnation; a new one (its node restarted, or another adopted the room)
     * relays nothing of ours, though our connection may not have noticed yet. */
    welcome(home) {
      sendState();
      availability.report(true);
      if (!availability.supported) return; // no peer connection to try: documents and memo only
      const moved = home !== lastHome && lastHome !== undefined;
      lastHome = home;
      if (!started) {
        started = true;
        link.start(false);
        availability.expectConnection();
      } else if (moved || !link.connected()) {
        link.restart();
        availability.expectConnection();
      }
    },
    stop() {
      link.close();
      camera.stop();
      screen.stop();
      audioTrack?.stop();
    },
  };
}

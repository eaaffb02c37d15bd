// 同席: a manager watches a live meeting read-only (docs/protocol.md, "Sitting in"). This page never sends a
// frame on its socket (the server would refuse it and close with 4005): it only receives the room's frames.
// Its video is one peer connection with four receive-only m-lines (host camera, guest camera, host screen,
// guest screen), offered over HTTP.
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "y-protocols/sync";
import { postJSON, socketURL } from "./api.js";
import { N_, t } from "./i18n.js";
import { CameraState, CloseCode, FINAL_CLOSES, Presence, SUBPROTOCOL } from "./protocol.js";
import { DocumentViewer } from "./viewer.js";

const WATCHED = ["host-camera", "guest-camera", "host-screen", "guest-screen"];
const ANSWER_LIMIT_MS = 8000;
const $ = (id) => document.getElementById(id);

// What a side's panel shows by its camera state (protocol.js CameraState; "on" shows the video).
const CAMERA_TEXT = {
  host: {
    [CameraState.OFF]: N_("The representative's camera is off."),
    [CameraState.PAUSED]: N_("Camera paused"),
  },
  guest: {
    [CameraState.OFF]: N_("The customer's camera is stopped."),
    [CameraState.PAUSED]: N_("Camera paused"),
    [CameraState.DECLINED]: N_("The customer chose not to use the camera."),
    [CameraState.BLOCKED]: N_("The customer's browser blocks the camera in its settings. The customer is being shown how to allow it."),
    [CameraState.NONE]: N_("The customer's device has no camera that can be used."),
  },
};
const PRESENCE_TEXT = {
  [Presence.ABSENT]: N_("Waiting for the customer to connect…"),
  [Presence.CONNECTED]: N_("The customer is connected."),
  [Presence.RECONNECTING]: N_("The customer's connection dropped. Reconnecting…"),
  [Presence.LEFT]: N_("The customer has ended the connection."),
};

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function parseIce(text) {
  try {
    const servers = JSON.parse(text || "[]");
    return Array.isArray(servers) ? servers : [];
  } catch {
    return [];
  }
}

function attach(video, track) {
  if ((video.srcObject?.getTracks()[0] ?? null) === track) return;
  video.srcObject = track ? new MediaStream([track]) : null;
  video.play?.().catch(() => {});
}

export function startSitInPage() {
  const root = $("sit-in");
  if (!root) return;
  const roomId = root.dataset.room;
  const iceServers = parseIce(root.dataset.ice);
  const status = $("sit-in-status");
  // Read-only: the viewer follows doc.state and doc.scroll and its send function does nothing.
  const viewer = new DocumentViewer($("viewer"), "observer", () => {});
  const doc = new Y.Doc();
  const text = doc.getText("memo");
  text.observe(() => { $("memo-view").textContent = text.toString(); });
  const peers = { host: null, guest: null };
  let socket = null;
  let pc = null;
  let attempts = 0;
  let finished = false;
  let answerTimer = null;

  function endView(title) {
    finished = true;
    pc?.close();
    root.hidden = true;
    $("ended-title").textContent = title;
    $("ended-view").hidden = false;
  }

  function render() {
    for (const side of ["host", "guest"]) {
      const state = peers[side];
      const overlay = $(`overlay-${side}`);
      const message = state === null ? (side === "host" ? t("Waiting for the representative's video…") : t("Waiting for the customer's video…"))
        : state.camera === CameraState.ON ? "" : t(CAMERA_TEXT[side][state.camera] ?? CAMERA_TEXT[side][CameraState.OFF]);
      overlay.textContent = message;
      overlay.hidden = !message;
    }
    const receivers = pc ? pc.getTransceivers().map((transceiver) => transceiver.receiver.track) : [];
    attach($("video-host"), receivers[0] ?? null);
    attach($("video-guest"), receivers[1] ?? null);
    const sharing = peers.guest?.screen ? "guest" : peers.host?.screen ? "host" : null;
    $("screen-view").hidden = !sharing;
    $("stage").classList.toggle("screen-on", Boolean(sharing));
    attach($("screen-video"), sharing ? receivers[sharing === "host" ? 2 : 3] ?? null : null);
    $("screen-label").textContent = sharing === "guest" ? t("The customer is sharing their screen.")
      : sharing === "host" ? t("The representative is sharing their screen.") : "";
  }

  /** A fresh receive-only peer connection, offered over HTTP for this socket's connection. */
  async function watch(connection) {
    pc?.close();
    const mine = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    pc = mine;
    WATCHED.forEach(() => mine.addTransceiver("video", { direction: "recvonly" }));
    mine.addEventListener("connectionstatechange", () => {
      if (mine === pc && mine.connectionState === "failed") watch(connection);
    });
    render();
    await mine.setLocalDescription(await mine.createOffer());
    await new Promise((resolve) => {
      if (mine.iceGatheringState === "complete") return resolve();
      const timer = setTimeout(resolve, 3000);
      mine.addEventListener("icegatheringstatechange", () => {
        if (mine.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
    if (mine !== pc) return;
    try {
      await postJSON(`/api/sit-in/${roomId}/offer`, { connection, sdp: mine.localDescription.sdp });
    } catch (error) {
      status.textContent = error.message || t("Video could not be connected. Please reload the camera from the menu.");
      return;
    }
    clearTimeout(answerTimer);
    answerTimer = setTimeout(() => { if (mine === pc && !mine.remoteDescription) watch(connection); }, ANSWER_LIMIT_MS);
  }

  const handlers = {
    "sit_in.welcome": (message) => {
      attempts = 0;
      status.textContent = t(PRESENCE_TEXT[message.peers.guest] ?? "");
      watch(message.connection);
    },
    presence: (message) => { if (message.role === "guest") status.textContent = t(PRESENCE_TEXT[message.presence] ?? ""); },
    "doc.state": (message) => viewer.show(message),
    "doc.scroll": (message) => viewer.followScroll(message),
    "memo.sync": (message) => {
      // Apply the server's step 2 / updates; whatever a sync would answer is never sent from this page.
      syncProtocol.readSyncMessage(decoding.createDecoder(fromBase64(message.data)), encoding.createEncoder(), doc, "remote");
    },
    "media.answer": async (message) => {
      if (!pc || pc.signalingState !== "have-local-offer") return;
      clearTimeout(answerTimer);
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch(() => {});
      render();
    },
    "media.peer": (message) => { peers[message.role] = message; render(); },
    ended: () => endView(t("This meeting has ended.")),
    error: (message) => { status.textContent = message.message; },
  };

  function connect() {
    socket = new WebSocket(socketURL(`/ws/sit-in/${roomId}`), [SUBPROTOCOL]);
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      handlers[message.type]?.(message);
    });
    socket.addEventListener("close", (event) => {
      if (finished) return;
      if (FINAL_CLOSES.has(event.code) || attempts >= 60) {
        const texts = {
          [CloseCode.ROOM_ENDED]: t("This meeting has ended."),
          [CloseCode.READ_ONLY]: t("You are sitting in: nothing can be sent to the meeting from this page."),
        };
        endView(texts[event.code] || t("Could not connect to the meeting."));
        return;
      }
      status.textContent = t("Connection lost. Reconnecting…");
      attempts += 1;
      setTimeout(connect, Math.min(5000, 250 * 2 ** Math.min(attempts, 5)));
    });
  }
  connect();

  // For the browser tests: the socket (to prove the server refuses what this page would send) and the video.
  window.tsunaguSitIn = {
    socket: () => socket,
    memo: () => text.toString(),
    async framesDecoded(slot) {
      const transceiver = pc?.getTransceivers()[slot];
      if (!transceiver) return 0;
      let frames = 0;
      (await transceiver.receiver.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp") frames = report.framesDecoded ?? 0;
      });
      return frames;
    },
  };
}

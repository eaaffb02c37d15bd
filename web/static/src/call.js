import { socketURL } from "./api.js";
import { N_, t } from "./i18n.js";
import { CloseCode, FINAL_CLOSES, Presence, SUBPROTOCOL } from "./protocol.js";
import { startCard } from "./card.js";
import { startFiles } from "./files.js";
import { startMemo } from "./memo.js";
import { startVideo } from "./video.js";
import { DocumentViewer, loadDocumentList } from "./viewer.js";

const MAX_RECONNECT_ATTEMPTS = 60; // with the back-off below, a little over the server's 5-minute grace

/**
 * The room channel: one WebSocket, reconnecting after unexpected drops. Handlers get each server frame.
 * Later features register their own message types with on(type, handler).
 */
export class RoomChannel {
  constructor(roomId) {
    this.roomId = roomId;
    this.handlers = new Map();
    this.attempts = 0;
    this.finished = false;
  }

  on(type, handler) {
    this.handlers.set(type, handler);
    return this;
  }

  connect() {
    const socket = new WebSocket(socketURL(`/ws/rooms/${this.roomId}`), [SUBPROTOCOL]);
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "welcome") this.attempts = 0;
      this.handlers.get(message.type)?.(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.finished) return;
      if (FINAL_CLOSES.has(event.code) || this.attempts >= MAX_RECONNECT_ATTEMPTS) {
        this.finished = true;
        this.handlers.get("closed")?.(event.code);
        return;
      }
      this.handlers.get("reconnecting")?.();
      this.attempts += 1;
      setTimeout(() => this.connect(), Math.min(5000, 250 * 2 ** Math.min(this.attempts, 5)));
    });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

const PEER_TEXT = {
  host: {
    [Presence.ABSENT]: N_("Waiting for the customer to connect…"),
    [Presence.CONNECTED]: N_("The customer is connected."),
    [Presence.RECONNECTING]: N_("The customer's connection dropped. Reconnecting…"),
    [Presence.LEFT]: N_("The customer has ended the connection."),
  },
  guest: {
    [Presence.ABSENT]: N_("Waiting for the representative…"),
    [Presence.CONNECTED]: N_("The representative is connected."),
    [Presence.RECONNECTING]: N_("The representative's connection dropped. Reconnecting…"),
    [Presence.LEFT]: N_("The representative has left."),
  },
};

export function startCallPage() {
  const root = document.getElementById("call");
  if (!root) return;
  const role = root.dataset.role;
  const other = role === "host" ? "guest" : "host";
  const peerStatus = document.getElementById("peer-status");
  const channelStatus = document.getElementById("channel-status");
  const channel = new RoomChannel(root.dataset.room);
  const viewer = new DocumentViewer(document.getElementById("viewer"), role, (message) => channel.send(message));

  let video = null;

  function endView(title, detail = "") {
    channel.finished = true;
    video?.stop();
    root.hidden = true;
    document.getElementById("ended-title").textContent = title;
    document.getElementById("ended-detail").textContent = detail;
    document.getElementById("ended-view").hidden = false;
  }

  if (root.dataset.ended) {
    endView(t("This meeting has ended."));
    return;
  }

  const showPeer = (presence) => { peerStatus.textContent = t(PEER_TEXT[role][presence]); peerStatus.dataset.presence = presence; };

  channel
    .on("welcome", (message) => {
      channelStatus.textContent = "";
      showPeer(message.peers[other]);
      video.welcome();
    })
    .on("presence", (message) => { if (message.role === other) showPeer(message.presence); })
    .on("doc.state", (message) => {
      viewer.show(message);
      const control = document.getElementById("guest-control");
      if (control) control.checked = message.guest_control;
    })
    .on("doc.scroll", (message) => viewer.followScroll(message))
    .on("sit_in", (message) => { document.getElementById("sit-in-badge").hidden = !message.present; })
    .on("ended", () => endView(role === "host" ? t("You ended the meeting.") : t("This meeting has ended."),
      role === "guest" ? t("Thank you. You may close this page.") : ""))
    .on("error", (message) => { channelStatus.textContent = message.message; })
    .on("reconnecting", () => { channelStatus.textContent = t("Connection lost. Reconnecting…"); })
    .on("closed", (code) => {
      const texts = {
        [CloseCode.ROOM_ENDED]: t("This meeting has ended."),
        [CloseCode.LEFT]: t("You have ended the connection."),
        [CloseCode.REPLACED]: t("This meeting was opened in another tab or window."),
        [CloseCode.REJOIN_EXPIRED]: t("Too much time has passed to reconnect. Please get a new connect number."),
      };
      endView(texts[code] || t("Could not connect to the meeting."));
    });
  startMemo(channel, role);
  startFiles(channel, role);
  startCard(channel, role);
  video = startVideo(channel, role, root);
  channel.connect();

  const list = document.getElementById("document-list");
  document.getElementById("share-document")?.addEventListener("click", () => {
    list.hidden = !list.hidden;
    if (!list.hidden) {
      loadDocumentList(list, (documentId) => {
        list.hidden = true;
        channel.send({ type: "doc.open", document_id: documentId });
      });
    }
  });
  document.getElementById("guest-control")?.addEventListener("change", (event) => {
    channel.send({ type: "doc.guest_control", allowed: event.target.checked });
  });

  document.getElementById("end-call").addEventListener("click", () => {
    if (role === "host" && !window.confirm(t("End the meeting for both of you?"))) return;
    channel.send({ type: "end" });
  });
}

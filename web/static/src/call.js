import { socketURL } from "./api.js";
import { N_, t } from "./i18n.js";
import { CloseCode, FINAL_CLOSES, Presence, SUBPROTOCOL } from "./protocol.js";
import { startCard } from "./card.js";
import { startFiles } from "./files.js";
import { startLayout } from "./layout.js";
import { startMemo } from "./memo.js";
import { PointerMarker, sendPointer } from "./pointer.js";
import { startRecording } from "./recording.js";
import { startVideo } from "./video.js";
import { DocumentViewer, loadDocumentList } from "./viewer.js";
import { PageZoom } from "./zoom.js";

const MAX_RECONNECT_ATTEMPTS = 60; // with the back-off below, a little over the server's 5-minute grace
const MAX_QUEUED = 50; // commands kept while reconnecting; beyond that the page says they were not sent
// What the page sends again by itself after every welcome (its state, a new offer, the memo's step 1):
// never queued, since an old copy would only be stale.
const RESENT_ON_WELCOME = new Set(["ping", "media.offer", "media.state", "media.video", "memo.sync", "memo.awareness"]);
// Where the document is: only the latest of these matters, so a queued one is replaced, not added to.
const LATEST_ONLY = new Set(["doc.scroll", "doc.page"]);
// Where the pointer was: stale by the time the socket is back, so never kept.
const NEVER_KEPT = new Set(["doc.pointer"]);

/**
 * The room channel: one WebSocket, reconnecting after unexpected drops. Handlers get each server frame.
 * Later features register their own message types with on(type, handler).
 *
 * Commands sent while the socket is reconnecting (終了, page turns, camera requests…) are queued and sent
 * after the next welcome, in order; 終了 stays pending until the server confirms it (ended, or close 4010 /
 * 4011) and is sent again after a reconnect, so a drop at the wrong moment cannot swallow it.
 */
export class RoomChannel {
  constructor(roomId) {
    this.roomId = roomId;
    this.handlers = new Map();
    this.attempts = 0;
    this.finished = false;
    this.queue = [];
    this.pendingEnd = null;
  }

  on(type, handler) {
    this.handlers.set(type, handler);
    return this;
  }

  connect() {
    const socket = new WebSocket(socketURL(`/ws/rooms/${this.roomId}`), [SUBPROTOCOL]);
    this.socket = socket;
    this.welcomed = false;
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "welcome") {
        this.attempts = 0;
        this.welcomed = true;
        // What waited for this welcome goes first: it happened before what the page now says again (the
        // guest's recording.seen before the camera the page then reports on).
        this.#flush();
      }
      if (message.type === "ended") this.pendingEnd = null;
      this.handlers.get(message.type)?.(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.welcomed = false;
      if (this.finished) return;
      if (FINAL_CLOSES.has(event.code) || this.attempts >= MAX_RECONNECT_ATTEMPTS) {
        this.finished = true;
        this.pendingEnd = null;
        this.handlers.get("closed")?.(event.code);
        return;
      }
      this.handlers.get("reconnecting")?.(this.pendingEnd !== null || this.queue.length > 0);
      this.attempts += 1;
      setTimeout(() => this.connect(), Math.min(5000, 250 * 2 ** Math.min(this.attempts, 5)));
    });
  }

  /** Send now, or queue until the next welcome; false when the message could not be kept. */
  send(message) {
    if (message.type === "end") this.pendingEnd = message;
    if (this.welcomed && this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    if (RESENT_ON_WELCOME.has(message.type) || NEVER_KEPT.has(message.type)) return false;
    if (message.type === "end") { // sent with the next welcome (#flush)
      this.handlers.get("reconnecting")?.(true);
      return true;
    }
    const stale = LATEST_ONLY.has(message.type) ? this.queue.findIndex((queued) => queued.type === message.type) : -1;
    if (stale >= 0) this.queue.splice(stale, 1);
    if (this.queue.length >= MAX_QUEUED) {
      this.handlers.get("unsent")?.(message);
      return false;
    }
    this.queue.push(message);
    this.handlers.get("reconnecting")?.(true);
    return true;
  }

  #flush() {
    const queued = this.queue;
    this.queue = [];
    queued.forEach((message) => this.socket.send(JSON.stringify(message)));
    if (this.pendingEnd) this.socket.send(JSON.stringify(this.pendingEnd));
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
  const send = (message) => channel.send(message);
  const viewer = new DocumentViewer(document.getElementById("viewer"), role, send);

  let video = null;

  function endView(title, detail = "") {
    channel.finished = true;
    video?.stop();
    root.hidden = true;
    document.getElementById("end-confirm")?.close();
    document.getElementById("ended-title").textContent = title;
    document.getElementById("ended-detail").textContent = detail;
    document.getElementById("ended-view").hidden = false;
  }

  // The guest's 終了 is not final at once: within the rejoin grace it may come back (もう一度接続する).
  let leftOnPurpose = false;
  function offerRejoin() {
    const rejoin = document.getElementById("rejoin");
    if (!rejoin) return;
    const grace = Number(root.dataset.rejoinGrace || 0) * 1000;
    rejoin.hidden = false;
    document.getElementById("ended-detail").textContent =
      t("You can connect again within {minutes} minutes.", { minutes: Math.round(grace / 60000) });
    setTimeout(() => {
      rejoin.hidden = true;
      document.getElementById("ended-detail").textContent = t("Thank you. You may close this page.");
    }, grace);
  }
  document.getElementById("rejoin")?.addEventListener("click", () => location.reload());

  if (root.dataset.ended) {
    endView(t("This meeting has ended."));
    return;
  }

  startLayout(root, role);
  // The pointer: this side's while it steers, the other side's as a marker; and the page full screen.
  const pointer = sendPointer(viewer, send);
  const marker = new PointerMarker(viewer);
  const zoom = new PageZoom(viewer);
  viewer.onChange = (newDocument) => {
    if (newDocument) {
      marker.hide();
      pointer.reset();
    } else {
      marker.place();
    }
    zoom.follow();
  };

  const showPeer = (presence) => { peerStatus.textContent = t(PEER_TEXT[role][presence]); peerStatus.dataset.presence = presence; };

  channel
    .on("welcome", (message) => {
      channelStatus.textContent = "";
      showPeer(message.peers[other]);
      video.welcome(message.home);
    })
    .on("presence", (message) => {
      if (message.role !== other) return;
      showPeer(message.presence);
      if (message.presence === Presence.CONNECTED) document.getElementById("sms-notice")?.remove();
    })
    .on("doc.state", (message) => {
      viewer.show(message);
      const control = document.getElementById("guest-control");
      if (control) control.checked = message.guest_control;
    })
    .on("doc.scroll", (message) => viewer.followScroll(message))
    .on("sit_in", (message) => { document.getElementById("sit-in-badge").hidden = !message.present; })
    .on("doc.pointer", (message) => marker.show(message.at))
    .on("ended", () => endView(role === "host" ? t("You ended the meeting.") : t("This meeting has ended."),
      role === "guest" ? t("Thank you. You may close this page.") : ""))
    .on("error", (message) => { channelStatus.textContent = message.message; })
    .on("reconnecting", (holding) => {
      channelStatus.textContent = channel.pendingEnd
        ? t("Connection lost. Reconnecting… “End” will be sent as soon as the connection is back.")
        : holding ? t("Connection lost. Reconnecting… What you did will be sent as soon as the connection is back.")
          : t("Connection lost. Reconnecting…");
    })
    .on("unsent", () => { channelStatus.textContent = t("The connection is lost, so this could not be sent. Please try again once it is back."); })
    .on("closed", (code) => {
      const texts = {
        [CloseCode.ROOM_ENDED]: t("This meeting has ended."),
        [CloseCode.LEFT]: t("You have ended the connection."),
        [CloseCode.REPLACED]: t("This meeting was opened in another tab or window."),
        [CloseCode.REJOIN_EXPIRED]: t("Too much time has passed to reconnect. Please get a new connect number."),
      };
      endView(texts[code] || t("Could not connect to the meeting."));
      if (code === CloseCode.LEFT && leftOnPurpose) offerRejoin();
    });
  startMemo(channel, role);
  startFiles(channel, role);
  startCard(channel, role);
  startRecording(channel, role);
  video = startVideo(channel, role, root);
  channel.connect();

  // 資料共有: the host's list opens above the meeting menu (layout.js); a choice opens it for both.
  const picker = document.getElementById("document-list-panel");
  picker?.addEventListener("open", () => {
    loadDocumentList(document.getElementById("document-list"), (documentId) => {
      document.getElementById("document-list-close").click();
      channel.send({ type: "doc.open", document_id: documentId });
    });
  });
  document.getElementById("guest-control")?.addEventListener("change", (event) => {
    channel.send({ type: "doc.guest_control", allowed: event.target.checked });
  });

  document.getElementById("end-call").addEventListener("click", () => {
    if (role === "host") {
      if (window.confirm(t("End the meeting for both of you?"))) channel.send({ type: "end" });
      return;
    }
    document.getElementById("end-confirm").showModal(); // one tap must not end it by mistake
  });
  document.getElementById("end-cancel")?.addEventListener("click", () => document.getElementById("end-confirm").close());
  document.getElementById("end-confirm-yes")?.addEventListener("click", () => {
    document.getElementById("end-confirm").close();
    leftOnPurpose = true;
    channel.send({ type: "end" });
  });
}

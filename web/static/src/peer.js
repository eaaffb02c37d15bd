// The browser's one peer connection with the server (docs/protocol.md, "Media"): three sendrecv transceivers
// in a fixed order, so every change of what we send is replaceTrack() and never a new offer. A failed or
// reloaded connection is replaced by a fresh one, offered with restart: true.

export const Slot = Object.freeze({ CAMERA: 0, SCREEN: 1, AUDIO: 2 });
const KINDS = ["video", "video", "audio"];

const GATHER_LIMIT_MS = 3000; // the server takes no trickled candidates; offer what we have by then
const DISCONNECTED_GRACE_MS = 2000; // "disconnected" often heals by itself; past this, start afresh
const ANSWER_LIMIT_MS = 8000; // an offer the server never answered is offered again

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); clearTimeout(timer); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, GATHER_LIMIT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** VP8 first: the server forwards video still encoded, so both browsers must speak the codec it relays. */
function preferVP8(transceiver) {
  const codecs = window.RTCRtpReceiver?.getCapabilities?.("video")?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const rank = (codec) => (codec.mimeType === "video/VP8" ? 0 : codec.mimeType === "video/rtx" ? 1 : 2);
  try {
    transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
  } catch { /* the browser's own order then; VP8 is first in every current browser */ }
}

export class MediaLink {
  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers
   * @param {(message: object) => void} options.send  sends a room channel frame
   * @param {(slot: number, track: MediaStreamTrack) => void} options.onRemoteTrack  a (new) receiving track
   * @param {(state: string) => void} [options.onState]  the connection state, for the page's status line
   */
  constructor({ iceServers, send, onRemoteTrack, onState = () => {} }) {
    this.iceServers = iceServers;
    this.send = send;
    this.onRemoteTrack = onRemoteTrack;
    this.onState = onState;
    this.tracks = [null, null, null]; // what we send on each slot, kept across restarts
    this.maxBitrate = null;
    this.pc = null;
    this.prepared = null; // the first offer, made before the room channel is up (prepare)
    this.offers = 0; // offers sent (tests check that a camera switch sends none)
    this.answers = 0;
    this.restarts = 0;
    this.lastRestart = 0;
    this.timers = {};
  }

  get transceivers() {
    return this.pc ? this.pc.getTransceivers() : [];
  }

  /**
   * Make the first connection's offer now, while the room channel is still connecting: the browser's
   * certificate, the offer and ICE gathering then overlap the socket's handshake instead of following it.
   * start() sends it.
   */
  prepare() {
    if (!this.pc && !this.prepared) this.prepared = this.#offer();
  }

  /** Open the connection and offer it (restart: replace the current one, which the server then drops). */
  async start(restart = false) {
    const prepared = restart ? null : this.prepared;
    this.prepared = null;
    let pc = prepared ? await prepared : null;
    if (prepared && pc !== this.pc) return; // closed or replaced while it was being made
    if (!pc) {
      this.close();
      pc = await this.#offer();
    }
    if (pc !== this.pc) return; // replaced while gathering
    // Only now do the page's <video> elements get the receiving tracks: given during the page's load, a track
    // with no frames yet would hold back the load event (and a phone's progress bar) until video flows.
    pc.getTransceivers().forEach((transceiver, slot) => this.onRemoteTrack(slot, transceiver.receiver.track));
    this.offers += 1;
    this.send({ type: "media.offer", sdp: pc.localDescription.sdp, restart });
    clearTimeout(this.timers.answer);
    this.timers.answer = setTimeout(() => { if (this.pc === pc && !pc.remoteDescription) this.restart(); }, ANSWER_LIMIT_MS);
  }

  /** A new peer connection with our three transceivers, its offer set and its candidates gathered. */
  async #offer() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    KINDS.forEach((kind) => {
      const transceiver = pc.addTransceiver(kind, { direction: "sendrecv" });
      if (kind === "video") preferVP8(transceiver);
    });
    await Promise.all(this.tracks.map((track, slot) => this.#apply(slot, track)));
    pc.addEventListener("connectionstatechange", () => this.#watch(pc));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gathered(pc);
    return pc;
  }

  /** media.answer from the server. Answers to offers we have since replaced are dropped. */
  async answer(sdp) {
    this.answers += 1;
    const pc = this.pc;
    if (!pc || this.answers < this.offers || pc.signalingState !== "have-local-offer") return;
    this.answers = this.offers;
    clearTimeout(this.timers.answer);
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
    } catch {
      this.restart();
    }
  }

  /** A fresh peer connection; spaced at least a second apart so a dead server is not flooded. */
  restart() {
    const wait = Math.max(0, this.lastRestart + 1000 - Date.now());
    clearTimeout(this.timers.restart);
    this.timers.restart = setTimeout(() => {
      this.lastRestart = Date.now();
      this.restarts += 1;
      this.answers = this.offers; // whatever answer is still on its way belongs to the old connection
      this.start(true);
    }, wait);
  }

  /** Send this track (or nothing) on a slot; no renegotiation. */
  async setTrack(slot, track) {
    this.tracks[slot] = track;
    await this.#apply(slot, track);
  }

  async setMaxBitrate(bitsPerSecond) {
    this.maxBitrate = bitsPerSecond;
    await this.#applyBitrate();
  }

  connected() {
    return this.pc?.connectionState === "connected";
  }

  /** framesDecoded of what arrives on a slot (0 before the first frame). */
  async framesDecoded(slot) {
    const transceiver = this.transceivers[slot];
    if (!transceiver) return 0;
    let frames = 0;
    (await transceiver.receiver.getStats()).forEach((report) => {
      if (report.type === "inbound-rtp") frames = report.framesDecoded ?? 0;
    });
    return frames;
  }

  close() {
    Object.values(this.timers).forEach(clearTimeout);
    this.prepared = null;
    if (this.pc) {
      const old = this.pc;
      this.pc = null;
      old.close();
    }
  }

  async #apply(slot, track) {
    const transceiver = this.transceivers[slot];
    if (!transceiver) return;
    await transceiver.sender.replaceTrack(track);
    if (slot === Slot.CAMERA) await this.#applyBitrate();
  }

  async #applyBitrate() {
    const sender = this.transceivers[Slot.CAMERA]?.sender;
    if (!sender) return;
    const parameters = sender.getParameters();
    if (!parameters.encodings?.length) return; // before negotiation; applied again after the answer
    parameters.encodings.forEach((encoding) => {
      if (this.maxBitrate) encoding.maxBitrate = this.maxBitrate;
      else delete encoding.maxBitrate;
    });
    try { await sender.setParameters(parameters); } catch { /* best effort: the browser's own rate */ }
  }

  #watch(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    this.onState(state);
    clearTimeout(this.timers.disconnected);
    if (state === "connected") this.#applyBitrate();
    if (state === "failed") this.restart();
    if (state === "disconnected") {
      this.timers.disconnected = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== "connected") this.restart();
      }, DISCONNECTED_GRACE_MS);
    }
  }
}

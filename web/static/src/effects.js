// What the other side sees of our camera: brightness and a virtual background (blur or an image), drawn on a
// canvas whose stream replaces the raw camera. MediaPipe's selfie segmenter is loaded only when a background
// is chosen, from our own static files (web/static/dist/mediapipe/, copied from npm at build time).

const MEDIAPIPE = "/static/dist/mediapipe/";
const FPS = 24;

let segmenterScript = null;

function loadSegmenterScript() {
  segmenterScript ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `${MEDIAPIPE}selfie_segmentation.js`;
    script.onload = () => (window.SelfieSegmentation ? resolve() : reject(new Error("no SelfieSegmentation")));
    script.onerror = () => { segmenterScript = null; reject(new Error("could not load the segmenter")); };
    document.head.append(script);
  });
  return segmenterScript;
}

export class Effects {
  constructor() {
    this.brightness = 1;
    this.background = "none"; // "none", "blur" or "image"
    this.image = null; // an ImageBitmap for "image"
    this.video = Object.assign(document.createElement("video"), { muted: true, playsInline: true });
    this.canvas = document.createElement("canvas");
    this.context = this.canvas.getContext("2d");
    this.output = null;
    this.segmenter = null;
    this.mask = null;
    this.busy = false;
    this.nextMask = 0;
    this.running = false;
  }

  /** True when the raw camera cannot be sent as it is. */
  active() {
    return this.brightness !== 1 || this.background !== "none";
  }

  /** The track to send for this raw camera track: the raw one when no effect is on. */
  process(raw) {
    if (!raw || !this.active()) {
      this.stop();
      return raw;
    }
    if (this.video.srcObject?.getVideoTracks()[0] !== raw) {
      this.video.srcObject = new MediaStream([raw]);
      this.video.play().catch(() => {});
    }
    if (!this.output || this.output.readyState === "ended") {
      this.output = this.canvas.captureStream(FPS).getVideoTracks()[0];
    }
    if (!this.running) {
      this.running = true;
      this.#loop();
    }
    return this.output;
  }

  /** Load the segmenter; rejects when this browser cannot run it (no WebAssembly or WebGL). */
  async enableSegmenter() {
    if (this.segmenter) return;
    await loadSegmenterScript();
    const segmenter = new window.SelfieSegmentation({ locateFile: (file) => `${MEDIAPIPE}${file}` });
    segmenter.setOptions({ modelSelection: 1 }); // the landscape model: cheaper, made for video calls
    segmenter.onResults((results) => { this.mask = results.segmentationMask; });
    await segmenter.initialize();
    this.segmenter = segmenter;
  }

  stop() {
    this.running = false;
    this.mask = null;
    if (this.output) this.output.stop();
    this.output = null;
    this.video.srcObject = null;
  }

  #loop() {
    if (!this.running) return;
    // A timer, not requestAnimationFrame, which stops altogether while the host looks at another window.
    setTimeout(() => this.#loop(), 1000 / FPS);
    const { video, canvas, context } = this;
    if (video.readyState < 2 || !video.videoWidth) return;
    if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    const segmenting = this.background !== "none" && this.segmenter;
    if (segmenting && !this.busy && performance.now() >= this.nextMask) {
      // Segmenting blocks this thread; on a slow machine the mask is refreshed less often (it lags a little)
      // so that the picture itself keeps its frame rate.
      this.busy = true;
      const started = performance.now();
      this.segmenter.send({ image: video }).catch(() => {}).finally(() => {
        this.busy = false;
        this.nextMask = performance.now() + Math.max(1000 / 15, 2 * (performance.now() - started));
      });
    }
    this.#draw(segmenting ? this.mask : null);
  }

  #draw(mask) {
    const { video, canvas, context: ctx } = this;
    const { width, height } = canvas;
    const light = `brightness(${this.brightness})`;
    ctx.save();
    ctx.globalCompositeOperation = "source-over";
    if (!mask) {
      ctx.filter = light;
      ctx.drawImage(video, 0, 0, width, height);
      ctx.restore();
      return;
    }
    ctx.clearRect(0, 0, width, height);
    ctx.filter = "none";
    ctx.drawImage(mask, 0, 0, width, height); // the person, as opacity
    ctx.globalCompositeOperation = "source-in";
    ctx.filter = light;
    ctx.drawImage(video, 0, 0, width, height);
    ctx.globalCompositeOperation = "destination-over"; // the background goes behind the person
    if (this.background === "image" && this.image) {
      const scale = Math.max(width / this.image.width, height / this.image.height); // cover, centred
      const w = this.image.width * scale;
      const h = this.image.height * scale;
      ctx.drawImage(this.image, (width - w) / 2, (height - h) / 2, w, h);
    } else {
      ctx.filter = `blur(${Math.round(width / 50)}px) ${light}`;
      ctx.drawImage(video, 0, 0, width, height);
    }
    ctx.restore();
  }
}

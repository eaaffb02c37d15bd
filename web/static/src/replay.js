// 商談記録 → 録画: the track files (WebM, fetched with Range by the media elements) played in step on one
// time line, the document page and the memo as they stood at that moment, and the events to seek to.
const TOLERANCE = 0.3; // seconds a media element may drift from the time line before it is set again

function clock(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function lastAtOrBefore(items, at) {
  let found = null;
  for (const item of items) {
    if (item.at > at) break;
    found = item;
  }
  return found;
}

export async function startReplayPage() {
  const root = document.getElementById("replay");
  const media = document.getElementById("replay-media");
  if (!root || !media) return;
  const data = await (await fetch(root.dataset.data, { headers: { Accept: "application/json" } })).json();
  const seek = document.getElementById("replay-seek");
  const play = document.getElementById("replay-play");
  const time = document.getElementById("replay-time");
  const pageImage = document.getElementById("replay-page");
  const pageName = document.getElementById("replay-page-name");
  const memo = document.getElementById("replay-memo");
  const noPage = pageName.textContent;
  seek.max = String(data.end - data.start);

  const tracks = data.recordings.map((recording) => {
    const element = document.createElement(recording.track === "audio" ? "audio" : "video");
    element.src = recording.url;
    element.preload = "auto";
    element.muted = recording.track !== "audio";
    element.playsInline = true;
    element.dataset.seat = recording.seat;
    element.dataset.track = recording.track;
    element.className = `replay-${recording.track}`;
    if (recording.track !== "audio") media.append(element);
    return { recording, element };
  });

  let position = 0; // ms since data.start
  let playing = false;
  let last = 0;

  function place() {
    const at = data.start + position;
    for (const { recording, element } of tracks) {
      const local = (at - recording.at) / 1000;
      const inside = local >= 0 && local <= recording.duration / 1000 + 0.1;
      element.hidden = !inside && recording.track !== "audio";
      if (!inside) {
        if (!element.paused) element.pause();
        continue;
      }
      if (Math.abs(element.currentTime - local) > TOLERANCE || !playing) element.currentTime = local;
      if (playing && element.paused) element.play().catch(() => {});
      if (!playing && !element.paused) element.pause();
    }
    const view = lastAtOrBefore(data.pages, at);
    const shown = view && (view.until === null || view.until > at) && view.image;
    pageImage.hidden = !shown;
    if (shown) {
      if (pageImage.getAttribute("src") !== view.image) pageImage.src = view.image;
      pageName.textContent = `${view.document} p.${view.page}`;
    } else {
      pageName.textContent = noPage;
    }
    const state = lastAtOrBefore(data.memo, at);
    memo.textContent = state ? state.text : "";
    seek.value = String(position);
    time.textContent = clock(position);
    root.dataset.position = String(position);
  }

  function seekTo(at) {
    position = Math.min(Math.max(0, at - data.start), data.end - data.start);
    place();
  }

  function frame(now) {
    if (!playing) return;
    position += now - last;
    last = now;
    if (position >= data.end - data.start) {
      position = data.end - data.start;
      playing = false;
      play.textContent = play.dataset.playText;
    }
    place();
    requestAnimationFrame(frame);
  }

  play.addEventListener("click", () => {
    playing = !playing;
    play.textContent = playing ? play.dataset.pauseText : play.dataset.playText;
    last = performance.now();
    place();
    if (playing) requestAnimationFrame(frame);
  });
  seek.addEventListener("input", () => seekTo(data.start + Number(seek.value)));

  const list = (id, items, text) => {
    const target = document.getElementById(id);
    for (const item of items) {
      if (item.at === null) continue;
      const entry = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = `${clock(item.at - data.start)} ${text(item)}`;
      button.addEventListener("click", () => seekTo(item.at));
      entry.append(button);
      target.append(entry);
    }
  };
  list("replay-events", data.events, (event) => event.text);
  list("replay-lines", data.lines, (line) => (line.who ? `${line.text}（${line.who}）` : line.text));
  window.tsunaguReplay = { seekTo, data, position: () => position };
  place();
  root.dataset.ready = "1";
}

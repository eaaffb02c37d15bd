import { ApiError, postJSON, socketURL } from "./api.js";
import { t } from "./i18n.js";

const IN_APP_BROWSERS = [
  [/\bLine\//i, "LINE"],
  [/Instagram/i, "Instagram"],
  [/FBAN|FBAV|FB_IAB|FBIOS/i, "Facebook"],
  [/Twitter|TwitterAndroid|\bX\//i, "X"],
];

/** In-app browsers cannot reliably use the camera; old browsers lack what the call needs. */
export function browserProblem(userAgent = navigator.userAgent) {
  for (const [pattern, name] of IN_APP_BROWSERS) {
    if (pattern.test(userAgent)) return { kind: "in-app", name };
  }
  if (!("WebSocket" in window) || !window.fetch || !window.Promise || !("mediaDevices" in navigator)) {
    return { kind: "old" };
  }
  return null;
}

function show(id, visible) {
  const node = document.getElementById(id);
  if (node) node.hidden = !visible;
}

function formatRemaining(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function startGuestPage() {
  const root = document.getElementById("guest");
  if (!root) return;
  const linkToken = root.dataset.linkToken || "";
  const dialog = document.getElementById("terms");
  const status = document.getElementById("guest-status");
  const numberView = document.getElementById("number");
  const countdown = document.getElementById("countdown");
  let timer = null;
  let lobby = null;

  const problem = browserProblem();
  if (problem?.kind === "in-app") {
    document.getElementById("in-app-message").textContent =
      t("You are in the {app} app's browser, which cannot use the camera.", { app: problem.name });
    document.getElementById("page-url").value = location.href;
    show("in-app", true);
  } else if (problem?.kind === "old") {
    show("old-browser", true);
  }

  function say(message, isError = false) {
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  function errorText(error) {
    if (error instanceof ApiError && error.message) return error.message;
    return t("Could not connect. Please check your network and try again.");
  }

  // The lobby socket waits for the host to redeem the number. It reconnects (with back-off) while the number
  // is valid: the server checks on every connect whether the host has let this browser in meanwhile.
  let lobbyAttempts = 0;
  let lobbyTimer = null;
  function waitForHost() {
    clearTimeout(lobbyTimer);
    if (lobby) {
      lobby.onclose = null;
      lobby.close();
    }
    const socket = new WebSocket(socketURL("/ws/lobby"));
    lobby = socket;
    let admitted = false;
    socket.addEventListener("open", () => { lobbyAttempts = 0; });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "admitted") {
        admitted = true;
        say(t("Connected. Opening the meeting…"));
        location.assign(message.url);
      }
    });
    socket.onclose = (event) => {
      if (admitted || lobby !== socket || numberView.classList.contains("expired") || event.code === 4003) return;
      lobbyAttempts += 1;
      lobbyTimer = setTimeout(waitForHost, Math.min(5000, 250 * 2 ** Math.min(lobbyAttempts, 5)));
    };
  }

  function stopWaiting() {
    clearTimeout(lobbyTimer);
    if (lobby) {
      lobby.onclose = null;
      lobby.close();
      lobby = null;
    }
  }

  function expire() {
    clearInterval(timer);
    numberView.classList.add("expired");
    countdown.textContent = t("This number has expired. Please issue a new one.");
    show("reissue", true);
    stopWaiting();
  }

  async function issue() {
    say("");
    try {
      const issued = await postJSON("/api/numbers", { org: root.dataset.org || "" });
      const deadline = performance.now() + issued.expires_in * 1000;
      document.getElementById("number-digits").textContent = issued.number;
      numberView.classList.remove("expired");
      show("number", true);
      show("start", false);
      show("reissue", true);
      clearInterval(timer);
      const tick = () => {
        const left = (deadline - performance.now()) / 1000;
        if (left <= 0) return expire();
        countdown.textContent = t("Valid for {time}", { time: formatRemaining(left) });
      };
      tick();
      timer = setInterval(tick, 250);
      waitForHost();
    } catch (error) {
      say(errorText(error), true);
    }
  }

  async function acceptLink() {
    try {
      const accepted = await postJSON(`/api/links/${encodeURIComponent(linkToken)}/accept`);
      location.assign(accepted.url);
    } catch (error) {
      say(errorText(error), true);
    }
  }

  document.getElementById("start").addEventListener("click", () => dialog.showModal());
  document.getElementById("reissue").addEventListener("click", issue);
  document.getElementById("terms-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("terms-ok").addEventListener("click", () => {
    dialog.close();
    if (linkToken) acceptLink();
    else issue();
  });
  document.getElementById("copy-url")?.addEventListener("click", () => {
    navigator.clipboard?.writeText(location.href);
    say(t("The address has been copied. Paste it into Safari or Chrome."));
  });
}

// The WebChat page: sessions, history, sending, streamed replies, abort, connection state,
// the Automation view (automation.js) and the Channels view (channels.js).
import { Automation } from "./automation.js";
import { Channels } from "./channels.js";
import { Gateway, State } from "./gateway.js";
import { plural, reconnectText, secondsLeft, shortTitle, untilNextSecond } from "./text.js";

// sessionStorage only: the secret lives as long as the tab and never in a URL the server sees.
const STORE = Object.freeze({
  secret: "clawgate.webchat.secret",
  kind: "clawgate.webchat.authKind",
  session: "clawgate.webchat.session",
  instance: "clawgate.webchat.instance",
  view: "clawgate.webchat.view",
});
const HISTORY_LIMIT = 200;
const SESSION_LIMIT = 100;
const TITLE_CHARS = 48;
const STICKY_SCROLL_PX = 48;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  error: $("error"),
  auth: $("auth"),
  secret: $("auth-secret"),
  app: $("app"),
  sessionList: $("session-list"),
  newChat: $("new-chat"),
  chatTitle: $("chat-title"),
  earlier: $("earlier"),
  messages: $("messages"),
  composer: $("composer"),
  input: $("composer-input"),
  stop: $("stop"),
  approvals: $("approvals"),
  approvalList: $("approval-list"),
  viewChat: $("view-chat"),
  viewAutomation: $("view-automation"),
  viewChannels: $("view-channels"),
};

const view = {
  mainKey: "agent:main:main",
  current: undefined, // session key shown; null = a new chat not saved yet
  sessions: new Map(), // key -> SessionRow
  runs: new Map(), // runId -> {sessionKey, bubble, text} while a reply streams
  cursor: null, // chat.history paging cursor (clawgate extension) for older messages
  unsent: null, // {text, runId} of a send that failed, reused if the same text is sent again
  approvals: new Map(), // approval id -> exec.approval.requested payload, oldest first
};

/** Return a random id; crypto.randomUUID needs a secure context, a LAN http page is not one. */
function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Move `#token=…` from the address bar into sessionStorage. */
function takeSecretFromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token === null) return;
  sessionStorage.setItem(STORE.secret, token);
  sessionStorage.setItem(STORE.kind, "token");
  // The fragment never reaches the server, but it would stay in history and bookmarks.
  history.replaceState(null, "", location.pathname + location.search);
}

function instanceId() {
  let id = sessionStorage.getItem(STORE.instance);
  if (!id) {
    id = newId();
    sessionStorage.setItem(STORE.instance, id);
  }
  return id;
}

function credentials() {
  const secret = sessionStorage.getItem(STORE.secret);
  if (!secret) return null;
  return sessionStorage.getItem(STORE.kind) === "password" ? { password: secret } : { token: secret };
}

// -- connection state ---------------------------------------------------------

let countdownTimer = 0;

function setStatus(state, text) {
  clearTimeout(countdownTimer);
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

/** Show "Reconnecting in N s…" and count it down each second until the next attempt. */
function showReconnectWait({ delayMs = 0, reason }) {
  // Under a second there is nothing to count: say what is happening, not "in 1 s".
  const deadline = Date.now() + (delayMs >= 1000 ? delayMs : 0);
  const tick = () => {
    const now = Date.now();
    setStatus(State.RECONNECTING, reconnectText(secondsLeft(deadline, now), reason));
    const next = untilNextSecond(deadline, now);
    if (next > 0) countdownTimer = setTimeout(tick, next);
  };
  tick();
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

function showAuthForm() {
  ui.auth.hidden = false;
  ui.app.hidden = true;
  automation.hide();
  ui.secret.value = "";
  ui.secret.focus();
}

const AUTH_REFUSED = {
  AUTH_TOKEN_MISMATCH: "The gateway rejected this token; paste the current one below.",
  AUTH_PASSWORD_MISMATCH: "The gateway rejected this password; enter the current one below.",
  AUTH_DEVICE_TOKEN_MISMATCH: "The gateway rejected this token; paste the current gateway token below.",
};

function onAuthFailed({ code, message, retryAfterMs }) {
  const kind = sessionStorage.getItem(STORE.kind) || "token";
  const secret = sessionStorage.getItem(STORE.secret);
  // The same secret works in either mode's field; learn the mode from the refusal, once.
  const other = { AUTH_PASSWORD_MISSING: "password", AUTH_TOKEN_MISSING: "token" }[code];
  if (secret && other && other !== kind) {
    sessionStorage.setItem(STORE.kind, other);
    gateway.start();
    return;
  }
  if (code === "AUTH_RATE_LIMITED") {
    const seconds = Math.ceil((retryAfterMs || 60000) / 1000);
    setStatus(State.AUTH_FAILED, "Auth failed: too many attempts");
    showError(`Too many failed attempts from this address; wait ${plural(seconds, "second")}, then connect again.`);
    showAuthForm();
    return;
  }
  const missing = code.endsWith("_MISSING");
  sessionStorage.removeItem(STORE.secret);
  const what = code.startsWith("AUTH_PASSWORD") ? "password" : "token";
  setStatus(State.AUTH_FAILED, missing ? `Auth needed: enter the ${what}` : `Auth failed: wrong ${what}`);
  if (missing) clearError();
  else showError(AUTH_REFUSED[code] || message);
  showAuthForm();
}

function onState(state, info) {
  if (state === State.CONNECTING) setStatus(state, "Connecting…");
  else if (state === State.CONNECTED) setStatus(state, "Connected");
  else if (state === State.RECONNECTING) showReconnectWait(info);
  else if (state === State.AUTH_FAILED) onAuthFailed(info);
  else if (state === State.FAILED) {
    setStatus(state, "Not connected");
    if (info.code === "CONTROL_UI_ORIGIN_NOT_ALLOWED") {
      showError(`The gateway does not accept pages from ${location.origin}; add it to [gateway] allowed_origins in config.toml, or open http://127.0.0.1 on the gateway's host.`);
    } else if (info.code === "PROTOCOL_MISMATCH") {
      showError("This page and the gateway speak different protocol versions; reload the page.");
    } else {
      showError(info.message);
    }
  }
  ui.composer.dataset.connected = String(state === State.CONNECTED);
}

// -- sessions -----------------------------------------------------------------

function sessionTitle(row) {
  if (row.label) return row.label;
  if (row.key === view.mainKey) return "Main chat";
  return row.createdAt ? `Chat from ${new Date(row.createdAt).toLocaleString()}` : row.key;
}

/** Show `title` in `element` cut at a word boundary; the whole title is its tooltip. */
function showTitle(element, title) {
  const short = shortTitle(title, TITLE_CHARS);
  element.textContent = short;
  if (short === title) element.removeAttribute("title");
  else element.title = title;
}

function renderSessions() {
  const rows = [...view.sessions.values()].sort((a, b) => (b.updatedAt || 0) - (a.updatedAt || 0));
  if (!view.sessions.has(view.mainKey)) rows.push({ key: view.mainKey });
  if (view.current === null) rows.unshift({ key: null, label: "New chat" });
  ui.sessionList.replaceChildren(...rows.map((row) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "session";
    const title = document.createElement("span");
    title.className = "title";
    showTitle(title, sessionTitle(row));
    button.append(title);
    if (row.key === view.current) button.setAttribute("aria-current", "page");
    if (typeof row.messageCount === "number") {
      const meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = ` ${plural(row.messageCount, "message")}`;
      button.append(meta);
    }
    button.addEventListener("click", () => switchTo(row.key));
    const item = document.createElement("li");
    item.append(button);
    return item;
  }));
  const current = view.current === null ? { label: "New chat" } : view.sessions.get(view.current);
  showTitle(ui.chatTitle, sessionTitle(current || { key: view.current }));
}

async function refreshSessions() {
  const payload = await gateway.request("sessions.list", { limit: SESSION_LIMIT });
  view.sessions = new Map(payload.sessions.map((row) => [row.key, row]));
  renderSessions();
}

function onSessionsChanged(payload) {
  const { sessionKey, reason, ...row } = payload;
  if (reason === "deleted") {
    view.sessions.delete(sessionKey);
    if (view.current === sessionKey) switchTo(view.mainKey);
  } else {
    view.sessions.set(sessionKey, { ...row, key: sessionKey });
    if (reason === "reset" && view.current === sessionKey) loadHistory().catch(reportError);
  }
  renderSessions();
}

function switchTo(key) {
  view.current = key;
  if (key) sessionStorage.setItem(STORE.session, key);
  else sessionStorage.removeItem(STORE.session);
  renderSessions();
  ui.messages.replaceChildren();
  setCursor({});
  if (key) loadHistory().catch(reportError);
  updateStop();
  ui.input.focus();
}

// -- messages -----------------------------------------------------------------

function textOf(message) {
  if (!message || !Array.isArray(message.content)) return null;
  return message.content.filter((part) => part.type === "text").map((part) => part.text).join("");
}

function bubble(role, text, state, timestamp) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.role = role;
  item.dataset.state = state;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = { user: "You", assistant: "Assistant", system: "Note" }[role] || role;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  const note = document.createElement("span");
  note.className = "note";
  item.append(who, body, note);
  if (timestamp) item.title = new Date(timestamp).toLocaleString();
  return item;
}

function setBubble(item, { text, state, note }) {
  if (text !== undefined) item.querySelector(".text").textContent = text;
  if (state !== undefined) item.dataset.state = state;
  if (note !== undefined) item.querySelector(".note").textContent = note;
  // Screen readers announce a busy log entry once it settles, not on every delta.
  if (state === "streaming") item.setAttribute("aria-busy", "true");
  else if (state !== undefined) item.removeAttribute("aria-busy");
}

function append(item) {
  const log = ui.messages;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < STICKY_SCROLL_PX;
  log.append(item);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function keepScrolled(update) {
  const log = ui.messages;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < STICKY_SCROLL_PX;
  update();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function loadHistory() {
  const key = view.current;
  if (!key) return;
  let payload;
  try {
    payload = await gateway.request("chat.history", { sessionKey: key, limit: HISTORY_LIMIT });
  } catch (error) {
    if (key !== view.mainKey && error.code === "INVALID_REQUEST") {
      switchTo(view.mainKey); // the chat was deleted meanwhile
      return;
    }
    throw error;
  }
  if (view.current !== key) return; // the user moved on while we waited
  setCursor(payload);
  const items = payload.messages.map(historyBubble);
  // Replies still streaming are not in the transcript yet: keep their live bubbles last.
  for (const run of view.runs.values()) if (run.sessionKey === key) items.push(run.bubble);
  ui.messages.replaceChildren(...items);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  updateStop();
}

function historyBubble(message) {
  return bubble(message.role, textOf(message) ?? "", "done", message.timestamp);
}

function setCursor(payload) {
  // Gateways without clawgate's paging extension send neither field: no button then.
  view.cursor = payload.hasMore && payload.cursor ? payload.cursor : null;
  ui.earlier.hidden = view.cursor === null;
}

async function loadEarlier() {
  const key = view.current;
  const params = { sessionKey: key, limit: HISTORY_LIMIT, before: view.cursor };
  const payload = await gateway.request("chat.history", params);
  if (view.current !== key) return;
  const log = ui.messages;
  const fromBottom = log.scrollHeight - log.scrollTop;
  log.prepend(...payload.messages.map(historyBubble));
  log.scrollTop = log.scrollHeight - fromBottom; // keep what the reader was looking at
  setCursor(payload);
  if (ui.earlier.hidden) log.focus();
}

function startRun(runId, sessionKey) {
  const run = { sessionKey, text: "", bubble: bubble("assistant", "", "streaming") };
  setBubble(run.bubble, { state: "streaming" });
  view.runs.set(runId, run);
  if (sessionKey === view.current) append(run.bubble);
  updateStop();
  return run;
}

function finishRun(runId, state, note) {
  const run = view.runs.get(runId);
  if (!run) return;
  view.runs.delete(runId);
  keepScrolled(() => setBubble(run.bubble, { text: run.text, state, note }));
  updateStop();
}

function nextText(old, payload) {
  const full = textOf(payload.message);
  if (full !== null) return full; // deltas carry the cumulative text: it is the truth
  if (typeof payload.deltaText === "string") return payload.replace ? payload.deltaText : old + payload.deltaText;
  return old;
}

function onChat(payload) {
  const { runId, sessionKey, state } = payload;
  let run = view.runs.get(runId);
  if (!run) {
    if (sessionKey !== view.current) return;
    if (state !== "delta") {
      // A run we never saw streaming (another tab, a reconnect): the transcript has it.
      loadHistory().catch(reportError);
      return;
    }
    run = startRun(runId, sessionKey);
  }
  if (state === "delta") {
    run.text = nextText(run.text, payload);
    keepScrolled(() => setBubble(run.bubble, { text: run.text }));
  } else if (state === "final") {
    run.text = textOf(payload.message) ?? run.text;
    finishRun(runId, "done", "");
  } else if (state === "error") {
    const reason = payload.errorMessage || "the agent run failed";
    finishRun(runId, "error", `Failed: ${reason}`);
    if (sessionKey === view.current) showError(`The reply failed: ${reason}`);
  } else if (state === "aborted") {
    finishRun(runId, "aborted", "Stopped");
  }
}

function updateStop() {
  const streaming = [...view.runs.values()].some((run) => run.sessionKey === view.current);
  ui.stop.hidden = !streaming;
}

// -- actions ------------------------------------------------------------------

function reportError(error) {
  showError(error.message || String(error));
}

async function send(text) {
  clearError();
  const mine = bubble("user", text, "sending");
  append(mine);
  // Sending the same text again after a failure reuses its idempotency key: if the first
  // request did reach the gateway, the retry finds that run instead of starting a second.
  const retry = view.unsent && view.unsent.text === text ? view.unsent : null;
  const runId = retry ? retry.runId : newId();
  view.unsent = null;
  let run = null;
  try {
    let key = view.current;
    if (key === null) {
      const label = shortTitle(text.split("\n")[0], TITLE_CHARS);
      const created = await gateway.request("sessions.create", { label });
      key = created.key;
      view.sessions.set(key, created.session || { key, label });
      view.current = key;
      sessionStorage.setItem(STORE.session, key);
      renderSessions();
    }
    // Ready before the request: events may arrive before its response (spec §8.7).
    run = startRun(runId, key);
    await gateway.request("chat.send", { sessionKey: key, message: text, idempotencyKey: runId });
    setBubble(mine, { state: "done" });
  } catch (error) {
    setBubble(mine, { state: "failed", note: "Not sent" });
    if (run) {
      view.runs.delete(runId);
      run.bubble.remove();
      updateStop();
    }
    // Nothing typed is lost: the text goes back into the box to send again.
    if (!ui.input.value) ui.input.value = text;
    view.unsent = { text, runId };
    showError(`Not sent: ${error.message}`);
  }
}

async function stop() {
  const key = view.current;
  try {
    const result = await gateway.request("chat.abort", { sessionKey: key });
    if (!result.aborted) {
      // Nothing was running: those runs ended while we were not looking.
      for (const [runId, run] of view.runs) if (run.sessionKey === key) finishRun(runId, "done", "");
      await loadHistory();
    }
  } catch (error) {
    reportError(error);
  }
}

// -- exec approvals -------------------------------------------------------------

function renderApprovals() {
  ui.approvals.hidden = view.approvals.size === 0;
  ui.approvalList.replaceChildren(...[...view.approvals.values()].map((approval) => {
    const item = document.createElement("li");
    item.className = "approval";
    item.dataset.id = approval.id;
    const what = document.createElement("code");
    what.textContent = approval.request?.command || (approval.argv || []).join(" ");
    const who = document.createElement("span");
    who.className = "muted";
    const node = approval.request?.nodeId || approval.nodeId || "";
    who.textContent = `on node ${node.slice(0, 12)}, asked by ${approval.requestedBy || "?"}`;
    item.append(what, who);
    for (const [label, decision, css] of [
      ["Allow once", "allow-once", "allow"],
      ["Always", "allow-always", "always"],
      ["Deny", "deny", "deny"],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = css;
      button.textContent = label;
      button.setAttribute("aria-label", `${label}: ${what.textContent}`);
      button.addEventListener("click", () => resolveApproval(approval.id, decision));
      item.append(button);
    }
    return item;
  }));
}

async function resolveApproval(id, decision) {
  try {
    await gateway.request("exec.approval.resolve", { id, decision });
  } catch (error) {
    reportError(error);
  }
  view.approvals.delete(id);
  renderApprovals();
}

async function refreshApprovals() {
  const payload = await gateway.request("exec.approval.list", {});
  view.approvals = new Map((payload.approvals || []).map((approval) => [approval.id, approval]));
  renderApprovals();
}

function onApproval(name, payload) {
  if (name === "exec.approval.requested") view.approvals.set(payload.id, payload);
  else view.approvals.delete(payload.id);
  renderApprovals();
}

async function resync() {
  if (automation.visible) automation.refresh();
  if (channels.visible) channels.refresh();
  try {
    await Promise.all([
      gateway.request("sessions.subscribe", {}),
      refreshSessions(),
      loadHistory(),
      refreshApprovals(),
    ]);
  } catch (error) {
    reportError(error);
  }
}

function onHello(hello) {
  clearError();
  ui.auth.hidden = true;
  automation.connected(hello);
  channels.connected(hello);
  showView(sessionStorage.getItem(STORE.view) || "chat");
  const snapshot = hello.snapshot || {};
  if (snapshot.authMode === "token" || snapshot.authMode === "password") {
    sessionStorage.setItem(STORE.kind, snapshot.authMode);
  }
  view.mainKey = snapshot.sessionDefaults?.mainSessionKey || view.mainKey;
  if (view.current === undefined) view.current = sessionStorage.getItem(STORE.session) || view.mainKey;
  // Events were missed while disconnected: the transcript is the truth; a reply still
  // streaming comes back with its next (cumulative) delta.
  for (const run of view.runs.values()) run.bubble.remove();
  view.runs.clear();
  renderSessions();
  resync();
}

function onEvent(name, payload) {
  automation.event(name, payload);
  if (name === "chat") onChat(payload);
  else if (name === "sessions.changed") onSessionsChanged(payload);
  else if (name.startsWith("exec.approval.")) onApproval(name, payload);
  else if (name === "shutdown") setStatus("reconnecting", "The gateway is stopping…");
}

// -- views --------------------------------------------------------------------

function showView(name) {
  const shown = Object.hasOwn(views, name) ? name : "chat";
  sessionStorage.setItem(STORE.view, shown);
  ui.app.hidden = shown !== "chat";
  for (const [each, { button, panel }] of Object.entries(views)) {
    button.setAttribute("aria-pressed", String(each === shown));
    if (!panel) continue;
    if (each === shown) panel.show();
    else panel.hide();
  }
}

// -- wiring -------------------------------------------------------------------

takeSecretFromFragment();
const scheme = location.protocol === "https:" ? "wss" : "ws";
const gateway = new Gateway({
  url: `${scheme}://${location.host}/`,
  credentials,
  instanceId: instanceId(),
  on: { state: onState, hello: onHello, event: onEvent, gap: resync },
});
const automation = new Automation({ gateway, find: $ });
const channels = new Channels({ gateway, find: $ });
// Each view: its button and, besides the chat, the panel object that shows it.
const views = {
  chat: { button: ui.viewChat, panel: null },
  automation: { button: ui.viewAutomation, panel: automation },
  channels: { button: ui.viewChannels, panel: channels },
};

ui.auth.addEventListener("submit", (event) => {
  event.preventDefault();
  const secret = ui.secret.value.trim();
  if (!secret) return;
  sessionStorage.setItem(STORE.secret, secret);
  ui.secret.value = "";
  clearError();
  gateway.start();
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  ui.input.value = "";
  send(text);
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  } else if (event.key === "Escape" && !ui.stop.hidden) {
    stop();
  }
});

ui.stop.addEventListener("click", () => stop());
ui.viewChat.addEventListener("click", () => showView("chat"));
ui.viewAutomation.addEventListener("click", () => showView("automation"));
ui.viewChannels.addEventListener("click", () => showView("channels"));
ui.newChat.addEventListener("click", () => switchTo(null));
ui.earlier.addEventListener("click", () => loadEarlier().catch(reportError));
window.addEventListener("online", () => gateway.reconnectNow());

gateway.start();

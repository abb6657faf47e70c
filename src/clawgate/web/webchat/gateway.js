// One WebSocket to the gateway: handshake, requests, events, seq gaps, reconnects.
// Speaks the OpenClaw Gateway protocol (v3/v4) as an operator client without a device.

export const State = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  AUTH_FAILED: "auth-failed",
  FAILED: "failed",
});

const CLIENT = Object.freeze({
  id: "webchat-ui",
  version: "1",
  platform: "web",
  mode: "webchat",
  displayName: "WebChat",
});
// admin: the Automation view runs jobs and switches jobs and heartbeats (spec §10.1, §10.8);
// operator.approvals: the page shows system.run requests waiting for a decision.
// The page logs in with the gateway's shared secret, which is the owner's credential anyway.
const SCOPES = Object.freeze([
  "operator.read",
  "operator.write",
  "operator.admin",
  "operator.approvals",
]);
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
const CLOSE_TICK_TIMEOUT = 4000;
// Credential refusals: retrying with the same secret only counts towards a lockout.
const AUTH_CODES = new Set([
  "AUTH_TOKEN_MISSING", "AUTH_TOKEN_MISMATCH", "AUTH_PASSWORD_MISSING",
  "AUTH_PASSWORD_MISMATCH", "AUTH_DEVICE_TOKEN_MISMATCH", "AUTH_RATE_LIMITED",
]);
// Refusals no retry can fix without a change on the gateway's side.
const FATAL_CODES = new Set(["CONTROL_UI_ORIGIN_NOT_ALLOWED", "PROTOCOL_MISMATCH"]);

/** A failed request or handshake, with the gateway's error code. */
export class GatewayError extends Error {
  constructor({ code, message, details, retryAfterMs }) {
    super(message);
    this.code = code;
    this.detailCode = details && typeof details === "object" ? details.code : undefined;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Return a full-jitter backoff delay in ms for reconnect attempt `attempt` (0-based). */
export function backoffDelay(attempt, random = Math.random) {
  return Math.floor(random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
}

/** Keep one operator connection open and report what happens on it. */
export class Gateway {
  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL of the gateway.
   * @param {() => {token?: string, password?: string}} options.credentials read per attempt.
   * @param {string} options.instanceId stable per tab, so reconnects keep one presence entry.
   * @param {object} options.on callbacks: state(state, info), hello(hello), event(name, payload), gap().
   */
  constructor({ url, credentials, instanceId, on }) {
    this.url = url;
    this.credentials = credentials;
    this.instanceId = instanceId;
    this.on = on;
    this.socket = null;
    this.hello = null;
    this.pending = new Map();
    this.nextId = 0;
    this.lastSeq = 0;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = 0;
    this.tickTimer = 0;
  }

  /** Open the connection (again), forgetting an earlier auth failure. */
  start() {
    this.stopped = false;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "reconnect");
    else this.open();
  }

  /** Skip the rest of a reconnect wait (e.g. the network is back). */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  /** Close for good; pending requests fail. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "bye");
  }

  /** Send one request; resolve with its payload or reject with a GatewayError. */
  request(method, params) {
    if (!this.hello || !this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new GatewayError({
        code: "NOT_CONNECTED",
        message: "not connected to the gateway; wait until it reconnects and try again",
      }));
    }
    return this.send(method, params);
  }

  send(method, params) {
    const id = `wc${++this.nextId}`;
    const frame = { type: "req", id, method };
    if (params !== undefined) frame.params = params;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify(frame));
    });
  }

  open() {
    this.hello = null;
    this.lastSeq = 0;
    this.on.state(this.attempt === 0 ? State.CONNECTING : State.RECONNECTING, {});
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("message", (message) => this.receive(socket, message.data));
    socket.addEventListener("close", (close) => this.closed(socket, close));
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // the gateway only sends JSON; anything else is not ours to act on
    }
    this.watchTicks();
    if (frame.type === "res") {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      if (frame.ok) waiter.resolve(frame.payload);
      else waiter.reject(new GatewayError(frame.error || { code: "UNAVAILABLE", message: "request failed" }));
      return;
    }
    if (frame.type !== "event") return;
    if (frame.event === "connect.challenge") {
      this.handshake(socket);
      return;
    }
    if (!this.hello) return;
    if (typeof frame.seq === "number") {
      // seq is per connection and gap-free (spec §8.1); a jump means our view is stale.
      const gap = frame.seq !== this.lastSeq + 1;
      this.lastSeq = frame.seq;
      if (gap) this.on.gap();
    }
    this.on.event(frame.event, frame.payload || {});
  }

  async handshake(socket) {
    const params = {
      minProtocol: 3,
      maxProtocol: 4,
      client: { ...CLIENT, instanceId: this.instanceId },
      role: "operator",
      scopes: [...SCOPES],
      locale: navigator.language || "en",
      userAgent: navigator.userAgent,
    };
    const auth = this.credentials();
    if (auth) params.auth = auth;
    try {
      this.hello = await this.send("connect", params);
    } catch (error) {
      this.refused(error);
      return;
    }
    if (socket !== this.socket) return;
    this.attempt = 0;
    this.watchTicks();
    this.on.hello(this.hello);
    this.on.state(State.CONNECTED, {});
  }

  refused(error) {
    const code = error.detailCode || error.code;
    if (AUTH_CODES.has(code)) {
      this.stopped = true;
      this.on.state(State.AUTH_FAILED, { code, message: error.message, retryAfterMs: error.retryAfterMs });
    } else if (FATAL_CODES.has(code)) {
      this.stopped = true;
      this.on.state(State.FAILED, { code, message: error.message });
    } else if (error.retryAfterMs) {
      this.attempt = Math.max(this.attempt, 1);
      this.retryAfterMs = error.retryAfterMs;
    }
  }

  watchTicks() {
    clearTimeout(this.tickTimer);
    const interval = this.hello?.policy?.tickIntervalMs;
    if (!interval) return;
    const socket = this.socket;
    // Two silent tick intervals mean a dead link that TCP has not noticed yet (spec §8.4).
    this.tickTimer = setTimeout(() => socket.close(CLOSE_TICK_TIMEOUT, "tick timeout"), 2 * interval);
  }

  closed(socket, close) {
    if (socket !== this.socket) return;
    clearTimeout(this.tickTimer);
    this.socket = null;
    this.hello = null;
    for (const waiter of this.pending.values()) {
      waiter.reject(new GatewayError({
        code: "NOT_CONNECTED",
        message: "the connection to the gateway was lost; try again when it is back",
      }));
    }
    this.pending.clear();
    if (this.stopped) return;
    const delay = this.retryAfterMs || backoffDelay(this.attempt);
    this.retryAfterMs = 0;
    this.attempt += 1;
    const reason = close.code === 1012 ? "the gateway is restarting" : "the connection was lost";
    this.on.state(State.RECONNECTING, { delayMs: delay, reason });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}

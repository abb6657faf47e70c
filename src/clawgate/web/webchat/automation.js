// The Automation view: cron jobs (next run in local time, last status, run now, on/off)
// and the heartbeat's state. It reads when shown and refreshes on `cron`/`heartbeat` events.

import { cell, text } from "./dom.js";
import { plural } from "./text.js";

const ADMIN = "operator.admin";
const REFRESH_DELAY_MS = 150;
const DATE_STYLE = Object.freeze({
  weekday: "short", year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", timeZoneName: "short",
});

/** Return `ms` as a date and time on this browser's clock (its time zone). */
export function localTime(ms) {
  return new Date(ms).toLocaleString(undefined, DATE_STYLE);
}

/** Return an interval in ms the way the gateway writes one: 30m, 1h, 45s. */
export function interval(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function scheduleText(schedule) {
  if (schedule.kind === "cron") return `cron ${schedule.expr} (${schedule.tz})`;
  if (schedule.kind === "every") return `every ${interval(schedule.everyMs)}`;
  return `once, ${localTime(schedule.atMs)}`;
}

function payloadText(job) {
  const payload = job.payload;
  if (payload.kind === "systemEvent") return `main session: ${payload.text}`;
  return `agent turn: ${payload.message}`;
}

function timeElement(ms) {
  const element = document.createElement("time");
  element.dateTime = new Date(ms).toISOString();
  element.textContent = localTime(ms);
  return element;
}

export class Automation {
  /**
   * @param {object} options
   * @param {{request: (method: string, params?: object) => Promise<any>}} options.gateway
   * @param {(id: string) => HTMLElement} options.find looks an element up by id.
   */
  constructor({ gateway, find }) {
    this.gateway = gateway;
    this.ui = {
      root: find("automation"),
      note: find("automation-note"),
      heartbeatState: find("heartbeat-state"),
      heartbeatLast: find("heartbeat-last"),
      heartbeatToggle: find("heartbeat-toggle"),
      summary: find("cron-summary"),
      table: find("cron-table"),
      jobs: find("cron-jobs"),
      empty: find("cron-empty"),
    };
    this.visible = false;
    this.canAdmin = false;
    this.heartbeat = null; // {enabled, every} from `status`
    this.lastBeat = null;
    this.refreshTimer = 0;
    this.ui.heartbeatToggle.addEventListener("click", () => this.toggleHeartbeats());
  }

  /** A new connection: remember what it may do, and read again if shown. */
  connected(hello) {
    this.canAdmin = (hello.auth?.scopes || []).includes(ADMIN);
    if (this.visible) this.refresh();
  }

  show() {
    this.visible = true;
    this.ui.root.hidden = false;
    this.refresh();
  }

  hide() {
    this.visible = false;
    this.ui.root.hidden = true;
  }

  /** React to a gateway event; only `cron` and `heartbeat` concern this view. */
  event(name, payload) {
    if (name === "heartbeat") {
      this.lastBeat = payload;
      if (this.visible) this.renderHeartbeat();
    } else if (name === "cron" && this.visible) {
      // A due pass sends many events at once: read the list once after them.
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
    }
  }

  async refresh() {
    let listing, status, last;
    try {
      [listing, status, last] = await Promise.all([
        this.gateway.request("cron.list", { includeDisabled: true }),
        this.gateway.request("status", {}),
        this.gateway.request("last-heartbeat", {}),
      ]);
    } catch (error) {
      this.say(`Could not read the automation state: ${error.message}`);
      return;
    }
    this.heartbeat = status.heartbeat?.agents?.[0] || null;
    this.lastBeat = last;
    this.renderHeartbeat();
    this.renderJobs(listing.jobs);
  }

  say(message) {
    this.ui.note.textContent = message;
  }

  // -- heartbeat ----------------------------------------------------------------

  renderHeartbeat() {
    const beat = this.heartbeat;
    const ui = this.ui;
    if (beat) {
      ui.heartbeatState.textContent = beat.enabled
        ? `On, every ${beat.every}.`
        : "Off: scheduled heartbeats do not run.";
      ui.heartbeatToggle.textContent = beat.enabled ? "Turn heartbeats off" : "Turn heartbeats on";
      ui.heartbeatToggle.hidden = !this.canAdmin;
    }
    const last = this.lastBeat;
    if (last) {
      const reason = last.reason ? ` (${last.reason})` : "";
      const where = last.status === "sent" && last.to ? ` to ${last.to}` : "";
      ui.heartbeatLast.textContent = `Last heartbeat: ${last.status}${where}${reason}, ${localTime(last.ts)}.`;
    }
  }

  async toggleHeartbeats() {
    const enabled = !(this.heartbeat && this.heartbeat.enabled);
    const button = this.ui.heartbeatToggle;
    button.disabled = true;
    try {
      const result = await this.gateway.request("set-heartbeats", { enabled });
      this.heartbeat = { ...this.heartbeat, enabled: result.enabled };
      this.renderHeartbeat();
      this.say(result.enabled ? "Heartbeats are on." : "Heartbeats are off.");
    } catch (error) {
      this.say(`Could not switch heartbeats: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // -- cron jobs ----------------------------------------------------------------

  renderJobs(jobs) {
    const ui = this.ui;
    ui.empty.hidden = jobs.length > 0;
    ui.table.hidden = jobs.length === 0;
    const enabled = jobs.filter((job) => job.enabled).length;
    ui.summary.textContent = jobs.length
      ? `${plural(jobs.length, "job")}, ${enabled} on. Times are in your time zone.`
      : "";
    if (!this.canAdmin && jobs.length) {
      ui.summary.textContent += " Running and switching jobs needs the operator.admin scope.";
    }
    ui.jobs.replaceChildren(...jobs.map((job) => this.row(job)));
  }

  row(job) {
    const name = job.name || job.id;
    const state = job.state || {};
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    tr.dataset.enabled = String(job.enabled);
    const title = document.createElement("th");
    title.scope = "row";
    title.append(text(name, "job-name"), text(payloadText(job), "job-what"));
    const next = state.nextRunAtMs ? timeElement(state.nextRunAtMs) : text(job.enabled ? "none" : "—");
    next.classList.add("next-run");
    const last = document.createElement("span");
    last.className = "last-run";
    if (state.lastStatus) {
      last.dataset.status = state.lastStatus;
      const late = state.lastRunLate ? " (late)" : "";
      last.textContent = `${state.lastStatus}${late}`;
      if (state.lastError) last.title = state.lastError;
      if (state.lastRunAtMs) last.append(text(localTime(state.lastRunAtMs), "when"));
      if (state.lastError) last.append(text(state.lastError, "why"));
    } else {
      last.textContent = "never ran";
    }
    const onOff = text(job.enabled ? "On" : "Off", "job-state");
    const actions = document.createElement("div");
    actions.className = "job-actions";
    if (this.canAdmin) {
      actions.append(
        this.button("Run now", `Run ${name} now`, () => this.runNow(job, name)),
        this.button(job.enabled ? "Disable" : "Enable", `${job.enabled ? "Disable" : "Enable"} ${name}`,
          () => this.setEnabled(job, name, !job.enabled)),
      );
    }
    tr.append(title, cell(text(scheduleText(job.schedule))), cell(next), cell(last), cell(onOff), cell(actions));
    return tr;
  }

  button(label, accessibleName, action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.setAttribute("aria-label", accessibleName);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  async runNow(job, name) {
    try {
      const result = await this.gateway.request("cron.run", { id: job.id });
      this.say(result.ran ? `Started ${name}.` : `${name} did not run: ${result.reason}.`);
    } catch (error) {
      this.say(`Could not run ${name}: ${error.message}`);
    }
  }

  async setEnabled(job, name, enabled) {
    try {
      await this.gateway.request("cron.update", { id: job.id, patch: { enabled } });
      this.say(`${name} is ${enabled ? "on" : "off"}.`);
      await this.refresh();
    } catch (error) {
      this.say(`Could not switch ${name}: ${error.message}`);
    }
  }
}

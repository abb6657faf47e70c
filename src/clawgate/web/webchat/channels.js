// The Channels view: each channel account's state, and linking an account that is a linked
// device (personal WhatsApp) by showing the QR code the gateway offers: `web.login.start`
// for the first code, then `web.login.wait` for each new one until the phone scans one.

import { cell, text } from "./dom.js";

const ADMIN = "operator.admin";
// Long enough to outlast a code (whatsmeow rotates them about every 20 s).
const WAIT_MS = 25_000;
// No event announces a channel's state: the shown view reads it again this often.
const POLL_MS = 3_000;

/** Return whether an account is linked by scanning a QR code rather than by a token. */
export function linksByQr(account) {
  return account.channel === "whatsapp" && account.mode === "web";
}

/** Return the account's name as the CLI writes it: `whatsapp`, or `whatsapp/work`. */
export function accountLabel(account) {
  return account.accountId === "default" ? account.channel : `${account.channel}/${account.accountId}`;
}

export class Channels {
  /**
   * @param {object} options
   * @param {{request: (method: string, params?: object) => Promise<any>}} options.gateway
   * @param {(id: string) => HTMLElement} options.find looks an element up by id.
   */
  constructor({ gateway, find }) {
    this.gateway = gateway;
    this.ui = {
      root: find("channels"),
      note: find("channels-note"),
      accounts: find("channel-accounts"),
      link: find("link"),
      linkTitle: find("link-title"),
      qr: find("link-qr"),
      help: find("link-help"),
      cancel: find("link-cancel"),
    };
    this.visible = false;
    this.canAdmin = false;
    this.linkRun = 0; // bumped to end a linking loop (stop, hide, a new link)
    this.pollTimer = 0;
    this.ui.cancel.addEventListener("click", () => this.stopLinking("Linking stopped."));
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
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => this.refresh(), POLL_MS);
  }

  hide() {
    this.visible = false;
    this.ui.root.hidden = true;
    clearInterval(this.pollTimer);
    this.stopLinking("");
  }

  async refresh() {
    let status;
    try {
      status = await this.gateway.request("channels.status", {});
    } catch (error) {
      this.say(`Could not read the channels: ${error.message}`);
      return;
    }
    this.ui.accounts.replaceChildren(...status.channels.map((account) => this.row(account)));
  }

  say(message) {
    this.ui.note.textContent = message;
  }

  row(account) {
    const label = accountLabel(account);
    const tr = document.createElement("tr");
    tr.dataset.state = account.state;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = label;
    const state = text(account.connected ? "connected" : account.state, "account-state");
    const why = account.connected || !account.lastError ? [] : [text(account.lastError, "why")];
    const actions = document.createElement("div");
    actions.className = "job-actions";
    if (linksByQr(account) && !account.connected && this.canAdmin) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Link";
      button.setAttribute("aria-label", `Link ${label}`);
      button.addEventListener("click", () => this.link(account, label));
      actions.append(button);
    }
    tr.append(name, cell(state, ...why), cell(actions));
    return tr;
  }

  // -- linking by QR code ---------------------------------------------------------

  async link(account, label) {
    const run = ++this.linkRun;
    const params = { channel: account.channel, accountId: account.accountId };
    const ui = this.ui;
    ui.linkTitle.textContent = `Link ${label}`;
    ui.qr.hidden = true;
    ui.help.textContent = "Asking the gateway for a QR code…";
    ui.link.hidden = false;
    this.say("");
    try {
      let answer = await this.gateway.request("web.login.start", params);
      let shown = null;
      while (!answer.connected && run === this.linkRun) {
        if (answer.qrDataUrl) {
          shown = answer.qrDataUrl;
          ui.qr.src = shown;
          ui.qr.alt = `QR code to link ${label}`;
          ui.qr.hidden = false;
          ui.help.textContent = answer.message;
        }
        answer = await this.gateway.request("web.login.wait", {
          ...params,
          currentQrDataUrl: shown,
          timeoutMs: WAIT_MS,
        });
      }
      if (run === this.linkRun) this.stopLinking(`${label} is linked.`);
    } catch (error) {
      if (run === this.linkRun) this.stopLinking(`Could not link ${label}: ${error.message}`);
    }
  }

  stopLinking(message) {
    this.linkRun += 1;
    this.ui.link.hidden = true;
    this.ui.qr.removeAttribute("src");
    if (message) this.say(message);
    if (this.visible) this.refresh();
  }
}

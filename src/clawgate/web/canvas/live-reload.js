// clawgate canvas live reload: injected into every page the canvas host serves.
// Credentials come from the page URL's fragment, e.g.
//   http://127.0.0.1:18793/main/#clawgate-token=...
// (also clawgate-password, clawgate-device-id + clawgate-device-token). They are kept in
// sessionStorage for the tab, removed from the address bar, and sent only as the socket's
// first frame; a fragment never reaches the server in a URL.
(function () {
  "use strict";
  if (window.__clawgateLiveReload) return;
  window.__clawgateLiveReload = true;

  var STORE = "clawgate-canvas-auth";
  var FIELDS = {
    "clawgate-token": "token",
    "clawgate-password": "password",
    "clawgate-device-id": "deviceId",
    "clawgate-device-token": "deviceToken",
  };

  function readCredentials() {
    var saved = {};
    try {
      saved = JSON.parse(sessionStorage.getItem(STORE) || "{}") || {};
    } catch (e) {
      saved = {};
    }
    var hash = location.hash.replace(/^#/, "");
    if (!hash) return saved;
    var kept = [];
    var found = false;
    hash.split("&").forEach(function (pair) {
      var eq = pair.indexOf("=");
      var key = eq < 0 ? pair : pair.slice(0, eq);
      if (Object.prototype.hasOwnProperty.call(FIELDS, key)) {
        saved[FIELDS[key]] = decodeURIComponent(pair.slice(eq + 1));
        found = true;
      } else {
        kept.push(pair);
      }
    });
    if (found) {
      try {
        sessionStorage.setItem(STORE, JSON.stringify(saved));
      } catch (e) {
        // storage refused: the credentials still serve this page load
      }
      var rest = kept.length ? "#" + kept.join("&") : "";
      history.replaceState(history.state, "", location.pathname + location.search + rest);
    }
    return saved;
  }

  // The version of this page the host served (on this script's tag): a change the page
  // already shows is then not announced to it.
  var script = document.currentScript;
  var version = (script && script.getAttribute("data-version")) || "";
  var credentials = readCredentials();
  var delayMs = 500;
  var wasOpen = false;

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/__clawgate__/ws");
    var refused = false;
    socket.onopen = function () {
      var frame = { type: "auth", page: location.pathname };
      if (version) frame.version = version;
      for (var key in credentials) frame[key] = credentials[key];
      socket.send(JSON.stringify(frame));
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message.type === "ready") {
        // Back after the host went away: files may have changed meanwhile.
        if (wasOpen) location.reload();
        wasOpen = true;
        delayMs = 500;
        document.documentElement.setAttribute("data-clawgate-live", "ready");
      } else if (message.type === "reload") {
        location.reload();
      }
    };
    socket.onclose = function (event) {
      if (event.code === 1008 || event.code === 4001) {
        refused = true;
        document.documentElement.setAttribute("data-clawgate-live", "refused");
        console.warn("clawgate live reload off: " + (event.reason || "refused"));
      }
      if (!refused) {
        setTimeout(connect, delayMs);
        delayMs = Math.min(delayMs * 2, 10000);
      }
    };
  }

  connect();
})();

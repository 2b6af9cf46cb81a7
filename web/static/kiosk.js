/* The patron's kiosk page.
 *
 * Contract with the server (web/kiosk.py):
 *   GET  /api/kiosk              the current kiosk view (first call)
 *   GET  /api/kiosk?version=N    long poll: answers once the view's version
 *                                differs from N, or with the same view after
 *                                a timeout
 *   POST /api/kiosk/pin          {"pin": "<4 digits>"}      (screen "pin")
 *   POST /api/kiosk/code         {"code": "A1B2"}           (screen "code":
 *                                the pickup code from the patron's message,
 *                                offered while central cannot check PINs)
 *   POST /api/kiosk/action       {"action": "cancel" | "extend"}
 *
 * The view (locker.core.Locker.kiosk_view) names the screen, a message or
 * notice code, the compartments being opened, the receipt items,
 * keypad_digits (digits typed on a hardware PIN pad) and seconds_left,
 * counted from the moment that version was published.  This page only
 * renders it; every decision is the server's.
 *
 * Secret handling: what is typed lives in one variable (`entry`) until OK,
 * is sent once in a POST body and dropped at once.  It never reaches the
 * DOM (only dots), the URL, storage or the console.
 */
(function () {
  "use strict";

  var T = window.BIBBOX_I18N;
  var PIN_LENGTH = 4;
  var CODE_MAX = 16;
  var TIMER_SCREENS = { pin: true, code: true, receipt: true, denied: true };
  var ENTRY_SCREENS = { pin: true, code: true };
  var SOON_S = 10;                  // announce the countdown from here on
  var SUBMIT_GUARD_MS = 8000;       // re-enable the pad if no answer came

  var html = document.documentElement;
  // On the locker's own screen (the launcher opens ?kiosk=1): no cursor.
  if (/[?&]kiosk=1(&|$)/.test(window.location.search)) { html.classList.add("on-locker"); }
  var defaultLang = T[html.lang] ? html.lang : "da";
  var lang = defaultLang;

  var view = null;                  // the last kiosk view received
  var version = null;               // its version
  var entry = "";                   // the PIN digits or code characters typed so far
  var submitting = false;           // an entry is on its way; OK stays disabled
  var submitVersion = null;         // the view version when it was sent
  var deadlineMs = null;            // performance.now() when the countdown hits 0
  var shownSeconds = null;
  var soonAnnounced = false;
  var localError = "";              // an i18n key: a request of ours failed
  var failures = 0;                 // consecutive failed polls

  function $(id) { return document.getElementById(id); }
  var main = $("screen");
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.screen"));

  /* -------------------------------------------------------------- texts */
  function text(key, arg) {
    var value = T[lang][key];
    return typeof value === "function" ? value(arg) : value;
  }

  function coded(group, code, arg) {
    var table = T[lang][group];
    var value = table[code] !== undefined ? table[code] : table.other;
    return typeof value === "function" ? value(arg) : value;
  }

  function doorText(c) {
    return (T[lang]["door_" + c.status] || T[lang].door_unavailable)(c.number);
  }

  /* The message shown above the pad on the pin and code screens. */
  var ENTRY_MESSAGES = { wrong_pin: true, pin_format: true, central_offline: true,
    code_format: true, wrong_code: true };

  function entryMessage(v) {
    return ENTRY_SCREENS[v.screen] && ENTRY_MESSAGES[v.message] ? text(v.message, v) : "";
  }

  function setText(el, value) {
    if (el.textContent !== value) { el.textContent = value; }
  }

  function show(el, visible) {
    if (el.hidden === visible) { el.hidden = !visible; }
  }

  /* -------------------------------------------------------------- rendering */
  function titleId(screen) { return screen === "code" ? "title-pin" : "title-" + screen; }

  function render() {
    var v = view || { screen: "idle" };
    var screen = v.screen;
    var previous = main.getAttribute("data-screen");

    main.setAttribute("data-screen", screen);
    main.setAttribute("data-version", version === null ? "" : String(version));
    main.setAttribute("aria-labelledby", titleId(screen));
    sections.forEach(function (s) {
      show(s, s.getAttribute("data-for").split(" ").indexOf(screen) >= 0);
    });

    html.lang = lang;
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (el) {
      setText(el, text(el.getAttribute("data-i18n")));
    });
    var toggle = $("lang-toggle");
    setText(toggle, text("switch_to"));
    toggle.lang = text("switch_lang");

    renderBanners();
    renderEntry(v);
    renderDoors($("doors"), "door-", v.compartments || []);
    renderDoors($("receipt-doors"), "receipt-door-", v.compartments || []);
    renderItems(v.items || []);
    setText($("title-denied"), screen === "denied" ? coded("denied_title", v.message, v) : "");
    setText($("denied-help"), screen === "denied" ? coded("denied_help", v.message, v) : "");
    renderNotice(v);
    renderTimer(v);
    announce(statusText(v));

    if (previous !== screen) {
      var title = $(titleId(screen));
      if (title) { title.focus({ preventScroll: true }); }
    }
  }

  function renderBanners() {
    var reader = $("banner-reader");
    var readerDown = !!view && view.reader_online === false;
    var libraryDown = !!view && view.library_online === false;
    setText(reader, text(readerDown ? "reader_offline" : "library_offline"));
    show(reader, readerDown || libraryDown);
    var conn = $("banner-connection");
    setText(conn, text("connection_lost"));
    show(conn, failures >= 2);
  }

  function renderEntry(v) {
    var code = v.screen === "code";
    setText($("title-pin"), text(code ? "code_title" : "pin_title"));
    setText($("pin-help"), text(code ? "code_help" : "pin_help"));

    var message = $("pin-message");
    setText(message, entryMessage(v));
    message.className = "message " + (v.message === "central_offline" ? "info" : "error");
    show(message, !!message.textContent);

    // A hardware PIN pad reports how many digits it holds; show those too.
    var typed = Math.max(entry.length, code ? 0 : (v.keypad_digits || 0));
    var slots = code ? Math.max(PIN_LENGTH, entry.length) : PIN_LENGTH;
    var dots = $("pin-dots");
    while (dots.children.length < slots) { dots.appendChild(document.createElement("span")); }
    while (dots.children.length > slots) { dots.removeChild(dots.lastChild); }
    Array.prototype.forEach.call(dots.children, function (dot, i) {
      dot.className = i < typed ? "dot filled" : "dot";
    });
    dots.setAttribute("data-count", String(typed));
    dots.setAttribute("aria-label", text(code ? "code_dots" : "pin_dots", typed));

    var ok = $("key-ok");
    var disabled = submitting || !entryComplete();
    if (ok.disabled !== disabled) {
      var hadFocus = document.activeElement === ok;
      ok.disabled = disabled;
      if (hadFocus && disabled) { $("title-pin").focus({ preventScroll: true }); }
    }
  }

  function renderDoors(list, testidPrefix, compartments) {
    var key = JSON.stringify([lang, compartments]);
    if (list.getAttribute("data-key") === key) { return; }
    list.setAttribute("data-key", key);
    list.setAttribute("data-count", String(compartments.length));
    list.textContent = "";
    compartments.forEach(function (c) {
      var li = document.createElement("li");
      li.className = "door status-" + c.status;
      li.setAttribute("data-number", String(c.number));
      li.setAttribute("data-status", c.status);
      li.setAttribute("data-testid", testidPrefix + c.number);
      var badge = document.createElement("span");
      badge.className = "door-no";
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = String(c.number);
      var label = document.createElement("span");
      label.className = "door-text";
      label.textContent = doorText(c);
      li.appendChild(badge);
      li.appendChild(label);
      list.appendChild(li);
    });
  }

  function renderItems(items) {
    var list = $("items");
    var key = JSON.stringify([lang, items]);
    if (list.getAttribute("data-key") === key) { return; }
    list.setAttribute("data-key", key);
    list.textContent = "";
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "item none";
      none.textContent = text("receipt_none");
      list.appendChild(none);
      return;
    }
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "item";
      li.setAttribute("data-testid", "item");
      var title = document.createElement("span");
      title.className = "item-title";
      title.textContent = item.title || item.barcode;
      var due = document.createElement("span");
      due.className = "item-due";
      due.setAttribute("data-due", item.due || "");
      due.textContent = item.due ? text("due", item.due) : text("due_unknown");
      li.appendChild(title);
      li.appendChild(due);
      list.appendChild(li);
    });
  }

  function renderNotice(v) {
    var notice = $("notice");
    var value = localError ? text(localError)
      : v.notice ? coded("notice", v.notice) || "" : "";
    setText(notice, value);
    notice.setAttribute("data-code", localError ? "request_failed" : (v.notice || ""));
    show(notice, !!value);
  }

  function renderTimer(v) {
    var visible = !!TIMER_SCREENS[v.screen] && deadlineMs !== null;
    show($("timer"), visible);
    setText($("cancel"), text(v.screen === "receipt" ? "done" : "cancel"));
    shownSeconds = null;            // force the countdown text to be rewritten
    tick();
  }

  function statusText(v) {
    switch (v.screen) {
      case "pin":
      case "code":
        return entryMessage(v) || text(v.screen === "code" ? "code_title" : "pin_title");
      case "verifying": return text("verifying_title");
      case "opening": return (v.compartments || []).map(doorText).join(". ");
      case "receipt": return text("receipt_title") + ". " + text("receipt_close");
      case "denied":
        return coded("denied_title", v.message, v) + ". " + coded("denied_help", v.message, v);
      default:
        return v.notice ? coded("notice", v.notice) || "" : text("idle_title");
    }
  }

  function announce(message) {
    setText($("status"), message || "");
  }

  /* -------------------------------------------------------------- countdown */
  function secondsLeft() {
    if (deadlineMs === null) { return null; }
    return Math.max(0, Math.ceil((deadlineMs - performance.now()) / 1000));
  }

  function tick() {
    var s = secondsLeft();
    if (s === shownSeconds) { return; }
    shownSeconds = s;
    var el = $("countdown");
    el.setAttribute("data-seconds", s === null ? "" : String(s));
    setText(el, s === null ? "" : text("countdown", s));
    el.classList.toggle("soon", s !== null && s <= SOON_S);
    if (s !== null && s <= SOON_S && s > 0 && !soonAnnounced && !$("timer").hidden) {
      soonAnnounced = true;
      announce(text("countdown_soon", s));
    }
  }

  /* -------------------------------------------------------------- server */
  function accept(v) {
    if (!v || typeof v.screen !== "string") { return; }
    var previousScreen = view ? view.screen : null;
    if (v.version !== version) {
      deadlineMs = typeof v.seconds_left === "number"
        ? performance.now() + v.seconds_left * 1000 : null;
      soonAnnounced = false;
      localError = "";
      if (submitting && v.version !== submitVersion) { submitting = false; }
      if (v.screen !== previousScreen) { entry = ""; }
      if (v.screen === "idle" && previousScreen && previousScreen !== "idle") {
        lang = defaultLang;         // the next patron starts in the default language
      }
    }
    view = v;
    version = v.version;
    render();
  }

  function poll() {
    var url = "/api/kiosk" + (version === null ? "" : "?version=" + encodeURIComponent(version));
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (v) {
        var wasDown = failures >= 2;
        failures = 0;
        if (wasDown) { version = null; }   // the daemon may have restarted
        accept(v);
        poll();
      })
      .catch(function () {
        failures += 1;
        render();
        window.setTimeout(poll, Math.min(5000, 250 * Math.pow(2, failures)));
      });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: body
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  function failed() {
    submitting = false;
    localError = "request_failed";
    render();
  }

  /* -------------------------------------------------------------- actions */
  function entryScreen() { return view && ENTRY_SCREENS[view.screen] ? view.screen : null; }

  function entryComplete() {
    var screen = entryScreen();
    return screen === "pin" ? entry.length === PIN_LENGTH : screen === "code" && entry.length > 0;
  }

  function type(ch) {
    var screen = entryScreen();
    var max = screen === "code" ? CODE_MAX : PIN_LENGTH;
    if (!screen || submitting || entry.length >= max) { return; }
    entry += ch;
    localError = "";
    render();
  }

  function erase() {
    if (!entryScreen() || submitting || !entry) { return; }
    entry = entry.slice(0, -1);
    render();
  }

  function submit() {
    var screen = entryScreen();
    if (!screen || submitting || !entryComplete()) { return; }
    submitting = true;
    submitVersion = version;
    var body = JSON.stringify(screen === "code" ? { code: entry } : { pin: entry });
    entry = "";                     // gone from the page before the request leaves
    render();
    var sentVersion = submitVersion;
    post(screen === "code" ? "/api/kiosk/code" : "/api/kiosk/pin", body).then(function () {
      window.setTimeout(function () {
        if (submitting && submitVersion === sentVersion && version === sentVersion) {
          submitting = false;       // the server ignored it: let the patron retry
          render();
        }
      }, SUBMIT_GUARD_MS);
    }, failed);
    body = null;
  }

  function action(name) {
    if (!view || !TIMER_SCREENS[view.screen]) { return; }
    post("/api/kiosk/action", JSON.stringify({ action: name })).catch(failed);
  }

  /* -------------------------------------------------------------- wiring */
  $("pad").addEventListener("click", function (e) {
    var key = e.target.closest("button");
    if (!key || key.disabled) { return; }
    if (key.hasAttribute("data-digit")) { type(key.getAttribute("data-digit")); }
    else if (key.id === "key-erase") { erase(); }
    else if (key.id === "key-ok") { submit(); }
  });
  $("extend").addEventListener("click", function () { action("extend"); });
  $("cancel").addEventListener("click", function () { action("cancel"); });
  $("lang-toggle").addEventListener("click", function () {
    lang = text("switch_lang");
    render();
  });

  /* A physical keyboard: digits (and letters for a pickup code), Backspace
   * and Enter on the entry screens, Escape to cancel. */
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var onButton = e.target && e.target.tagName === "BUTTON";
    var screen = entryScreen();
    if (screen) {
      var allowed = screen === "code" ? /^[0-9a-zA-Z]$/ : /^[0-9]$/;
      if (allowed.test(e.key)) { e.preventDefault(); type(e.key.toUpperCase()); return; }
      if (e.key === "Backspace") { e.preventDefault(); erase(); return; }
      // Enter submits, unless it presses a focused button that can act:
      // a digit key adds its digit until the entry is complete.
      var digitKey = onButton && e.target.hasAttribute("data-digit");
      if (e.key === "Enter" && (!onButton || (digitKey && entryComplete()))) {
        e.preventDefault();
        submit();
        return;
      }
    }
    if (e.key === "Escape" && !$("timer").hidden) { e.preventDefault(); action("cancel"); }
  });

  window.setInterval(tick, 250);
  render();
  poll();
})();

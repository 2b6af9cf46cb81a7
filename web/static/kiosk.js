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
 *   POST /api/kiosk/number       {"number": "4711"}         (screen "number":
 *                                pickup without the card, then the PIN)
 *   POST /api/kiosk/action       {"action": "cancel" | "extend" | "pickup_number"
 *                                 | "pin_typed"}
 *                                ("pickup_number": the idle screen's button,
 *                                shown when the view's number_entry is true;
 *                                "pin_typed": the PIN's last digit was typed,
 *                                a hint for the lock bus that carries no digits)
 *
 * The view (locker.core.Locker.kiosk_view) names the screen, a message or
 * notice code, the compartments being opened, the receipt items (and
 * left_behind: doors an item sensor still sees something behind),
 * keypad_digits (digits typed on a hardware PIN pad) and seconds_left,
 * counted from the moment that version was published.  This page only
 * renders it; every decision is the server's.
 *
 * Texts come from the catalogues (web/static/i18n.js); the language buttons
 * switch among every catalogue the server offers, and the language, like the
 * large-text mode, goes back to the default when the screen returns to idle.
 *
 * The door tone: while a door of the patron stands open on the opening
 * screen and the close countdown is at TONE_FROM_S or less, a short beep
 * sounds every BEEP_EVERY_MS (Web Audio); it stops when the doors are closed.
 * The page shows it on <main data-tone="on|off" data-beeps="N"> (tests).
 *
 * Secret handling: what is typed lives in one variable (`entry`) until OK,
 * is sent once in a POST body and dropped at once.  It never reaches the
 * DOM (only dots), the URL, storage or the console.  The pickup number is
 * not a secret: it is shown as typed, so the patron can check it.
 *
 * Pickup without the card: the view's number_entry offers the button on the
 * idle screen; number_paused_s (kiosk-wide throttle) disables it and says
 * for how long, counted down here.
 */
(function () {
  "use strict";

  var I18N = window.BIBBOX_I18N;
  var PIN_LENGTH = 4;
  var CODE_MAX = 16;                // a pickup code or a pickup number
  var TIMER_SCREENS = { pin: true, code: true, number: true, receipt: true, denied: true,
    opening: true };
  var BUTTON_SCREENS = { pin: true, code: true, number: true, receipt: true, denied: true };
  var EXTEND_SCREENS = { pin: true, code: true, number: true, receipt: true };  // never on a denial
  // The texts the page picks by a code from the server: every code it knows.
  var DENIAL_CODES = ["card_blocked", "card_lost", "patron_blocked", "unknown_card", "nothing_here",
    "only_expired", "service_unavailable", "compartment_unavailable", "number_paused", "other"];
  var DOOR_STATUSES = ["queued", "unlocked", "open", "closed", "jammed", "unavailable"];
  var NOTICE_CODES = ["busy", "busy_other_card", "card_unreadable"];
  var PROBLEM_DOORS = { jammed: true, unavailable: true };
  var TONE_FROM_S = 30;             // the tone starts when the close countdown is here
  var BEEP_EVERY_MS = 4000;
  var BEEP_MS = 180;
  var ENTRY_SCREENS = { pin: true, code: true, number: true };
  var FREE_ENTRY = { code: true, number: true };   // letters and digits, any length to 16
  var SOON_S = 10;                  // announce the countdown from here on
  var SUBMIT_GUARD_MS = 8000;       // re-enable the pad if no answer came

  var html = document.documentElement;
  // On the locker's own screen (the launcher opens ?kiosk=1): no cursor.
  if (/[?&]kiosk=1(&|$)/.test(window.location.search)) { html.classList.add("on-locker"); }
  var defaultLang = I18N.catalogues[document.body.getAttribute("data-default-lang")]
    ? document.body.getAttribute("data-default-lang") : "da";
  var lang = defaultLang;
  var large = false;                // large text, high contrast
  var helpPhone = document.body.getAttribute("data-help-phone") || "";
  var helpHours = document.body.getAttribute("data-help-hours") || "";
  var audio = null;                 // the AudioContext, made at the first beep
  var nextBeepMs = null;            // performance.now() of the next beep, or null
  var beeps = 0;

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
  var numberPausedUntilMs = null;   // performance.now() when pickup by number reopens

  function $(id) { return document.getElementById(id); }
  var main = $("screen");
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.screen"));

  /* -------------------------------------------------------------- texts */
  function text(key, params) { return I18N.t(lang, key, params); }

  /* A text chosen by a code from the server, "group.code", else "group.other". */
  function coded(group, code, params) {
    return text(I18N.has(lang, group + "." + code) ? group + "." + code : group + ".other",
                params);
  }

  function denialParams(v) { return { count: v.minutes_blocked || 15 }; }

  function doorText(c) {
    var status = DOOR_STATUSES.indexOf(c.status) >= 0 ? c.status : "unavailable";
    return text("door." + status, { n: c.number });
  }

  function openDoors(v) {
    return (v.compartments || []).filter(function (c) { return c.status === "open"; })
      .map(function (c) { return c.number; });
  }

  /* The message shown above the pad on the pin and code screens. */
  var ENTRY_MESSAGES = { wrong_pin: true, pin_format: true, central_offline: true,
    code_format: true, wrong_code: true, number_format: true, number_or_pin_wrong: true };

  function entryMessage(v) {
    return ENTRY_SCREENS[v.screen] && ENTRY_MESSAGES[v.message]
      ? text(v.message, { count: v.tries_left }) : "";
  }

  function setText(el, value) {
    if (el.textContent !== value) { el.textContent = value; }
  }

  function show(el, visible) {
    if (el.hidden === visible) { el.hidden = !visible; }
  }

  /* -------------------------------------------------------------- rendering */
  function titleId(screen) {
    return screen === "code" || screen === "number" ? "title-pin" : "title-" + screen;
  }

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
    html.dir = I18N.dir(lang);
    html.classList.toggle("large", large);
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (el) {
      setText(el, text(el.getAttribute("data-i18n")));
    });
    Array.prototype.forEach.call(document.querySelectorAll(".btn-lang"), function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-lang") === lang));
    });
    $("languages").setAttribute("aria-label", text("languages"));
    $("large-text").setAttribute("aria-pressed", String(large));

    renderBanners();
    renderNumberOffer(v);
    renderEntry(v);
    setText($("verifying-help"), text(v.by_number ? "verifying_number_help" : "verifying_help"));
    renderDoors($("doors"), "door-", v.compartments || []);
    renderFront($("front"), v.compartments || []);
    renderDoors($("receipt-doors"), "receipt-door-", v.compartments || []);
    renderItems(v.items || []);
    renderReminders(v);
    setText($("title-denied"),
            screen === "denied" ? coded("denied_title", v.message, denialParams(v)) : "");
    setText($("denied-help"), screen === "denied" ? coded("denied_help", v.message) : "");
    renderHelp(v);
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

  /* The idle screen's way in without the card, and its pause. */
  function pausedMinutes() {
    var ms = numberPausedUntilMs === null ? 0 : numberPausedUntilMs - performance.now();
    return ms > 0 ? Math.ceil(ms / 60000) : 0;
  }

  function renderNumberOffer(v) {
    var offered = v.screen === "idle" && !!v.number_entry;
    var minutes = offered ? pausedMinutes() : 0;
    show($("number-offer"), offered);
    var button = $("number-start");
    if (button.disabled !== minutes > 0) { button.disabled = minutes > 0; }
    var note = $("number-paused");
    setText(note, minutes ? text("number_paused_note", { count: minutes }) : "");
    show(note, minutes > 0);
  }

  function renderEntry(v) {
    var code = v.screen === "code", number = v.screen === "number";
    setText($("title-pin"), text(number ? "number_title" : code ? "code_title" : "pin_title"));
    setText($("pin-help"), text(number ? "number_help" : code ? "code_help" : "pin_help"));

    var message = $("pin-message");
    setText(message, entryMessage(v));
    message.className = "message " + (v.message === "central_offline" ? "info" : "error");
    show(message, !!message.textContent);

    // A hardware PIN pad reports how many digits it holds; show those too.
    var typed = Math.max(entry.length, code ? 0 : (v.keypad_digits || 0));
    var slots = FREE_ENTRY[v.screen] ? Math.max(PIN_LENGTH, entry.length) : PIN_LENGTH;
    var dots = $("pin-dots");
    while (dots.children.length < slots) { dots.appendChild(document.createElement("span")); }
    while (dots.children.length > slots) { dots.removeChild(dots.lastChild); }
    // The pickup number shows as typed (a hardware pad's digits only as dots).
    dots.classList.toggle("chars", number);
    Array.prototype.forEach.call(dots.children, function (dot, i) {
      dot.className = i < typed ? "dot filled" : "dot";
      setText(dot, number ? (entry.charAt(i) || (i < typed ? "•" : "")) : "");
    });
    dots.setAttribute("data-count", String(typed));
    dots.setAttribute("aria-label", number
      ? text("number_dots", { number: entry.split("").join(" "), count: typed })
      : text(code ? "code_dots" : "pin_dots", { count: typed }));

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

  /* The cabinet's front, drawn small (from data-front, the configured
     places): the patron's doors filled and numbered, the others outlined,
     so "door 14" can be found at a glance.  Decorative next to the door
     list, which says the same in words (hence aria-hidden). */
  var FRONT = JSON.parse(document.body.getAttribute("data-front") || "null");

  function renderFront(box, compartments) {
    var mine = {};
    compartments.forEach(function (c) { mine[c.number] = c.status; });
    var key = JSON.stringify(mine);
    if (!FRONT || !compartments.length) { box.hidden = true; return; }
    box.hidden = false;
    if (box.getAttribute("data-key") === key) { return; }
    box.setAttribute("data-key", key);
    box.style.setProperty("--cols", String(FRONT.columns));
    box.style.setProperty("--rows", String(FRONT.rows));
    box.textContent = "";
    FRONT.doors.forEach(function (d) {
      var cell = document.createElement("span");
      var status = mine[d.n];
      cell.className = "front-door" + (status ? " mine status-" + status : "");
      cell.style.gridColumn = String(d.column);
      cell.style.gridRow = d.row + " / span " + d.rows;
      cell.setAttribute("data-testid", "front-" + d.n);
      if (status) {
        cell.setAttribute("data-mine", "true");
        cell.textContent = String(d.n);
      }
      box.appendChild(cell);
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
      due.textContent = item.due ? text("due", { date: I18N.formatDate(lang, item.due) })
        : text("due_unknown");
      li.appendChild(title);
      li.appendChild(due);
      list.appendChild(li);
    });
  }

  /* Close the door: on the opening screen while one stands open, and on the
   * receipt only for a door still open.  Forgot something: the reopen window;
   * an item sensor that still sees something says so (and how to reopen). */
  function renderReminders(v) {
    var open = openDoors(v);
    show($("close-prompt"), v.screen === "opening" && open.length > 0);
    show($("opening-help"), !open.length);      // the prompt says it once, louder
    var reminder = $("receipt-close");
    setText(reminder, open.length ? text("receipt_close", { doors: open.join(", ") }) : "");
    reminder.setAttribute("data-doors", open.join(","));
    show(reminder, v.screen === "receipt" && open.length > 0);
    var left = leftBehind(v), forgot = $("receipt-left");
    setText(forgot, left.length ? text(v.reopen ? "receipt_left_reopen" : "receipt_left_staff",
                                       { doors: left.join(", ") }) : "");
    forgot.setAttribute("data-doors", left.join(","));
    show(forgot, left.length > 0);
    show($("receipt-reopen"), v.screen === "receipt" && !!v.reopen && !open.length && !left.length);
  }

  /* Doors an item sensor still sees something behind, on the receipt. */
  function leftBehind(v) {
    return v.screen === "receipt" ? (v.left_behind || []) : [];
  }

  /* How to reach the library: on every denial, beside a door that failed, and
   * when something left behind can no longer be taken by showing the card. */
  function deadEnd(v) {
    return v.screen === "denied" || (leftBehind(v).length > 0 && !v.reopen) ||
      (v.compartments || []).some(function (c) {
        return PROBLEM_DOORS[c.status];
      });
  }

  /* "Ring til biblioteket: {phone}" with the value isolated left-to-right, so
   * a phone number keeps its digit order inside an Arabic sentence. */
  function fillIsolated(el, key, name, value) {
    var template = text(key, {}), key2 = JSON.stringify([template, value]);
    if (el.getAttribute("data-key") === key2) { return; }
    el.setAttribute("data-key", key2);
    var parts = template.split("{" + name + "}");
    el.textContent = "";
    el.appendChild(document.createTextNode(parts[0]));
    var bdi = document.createElement("bdi");
    bdi.dir = "ltr";
    bdi.textContent = value;
    el.appendChild(bdi);
    el.appendChild(document.createTextNode(parts.slice(1).join("")));
  }

  function renderHelp(v) {
    fillIsolated($("help-phone"), "help_phone", "phone", helpPhone);
    fillIsolated($("help-hours"), "help_hours", "hours", helpHours);
    show($("help-phone"), !!helpPhone);
    show($("help-hours"), !!helpHours);
    show($("help"), deadEnd(v) && !!(helpPhone || helpHours));
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
    var opening = v.screen === "opening";
    var visible = !!TIMER_SCREENS[v.screen] && deadlineMs !== null &&
      (!opening || openDoors(v).length > 0);
    show($("timer"), visible);
    show($("extend"), !!EXTEND_SCREENS[v.screen]);
    show($("cancel"), !!BUTTON_SCREENS[v.screen]);
    setText($("cancel"), text(v.screen === "receipt" ? "done"
      : v.screen === "denied" ? "ok" : "cancel"));
    shownSeconds = null;            // force the countdown text to be rewritten
    tick();
  }

  function statusText(v) {
    switch (v.screen) {
      case "pin":
      case "code":
      case "number":
        return entryMessage(v) || text(v.screen + "_title");
      case "verifying": return text("verifying_title");
      case "opening":
        return (v.compartments || []).map(doorText).join(". ") +
          (openDoors(v).length ? ". " + text("close_prompt") : "");
      case "receipt":
        return text("receipt_title") + ". " + $("receipt-close").textContent +
          ($("receipt-left").textContent ? " " + $("receipt-left").textContent : "");
      case "denied":
        return coded("denied_title", v.message, denialParams(v)) + ". " +
          coded("denied_help", v.message);
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
    tone();
    if (view && view.screen === "idle") { renderNumberOffer(view); }
    var s = secondsLeft();
    if (s === shownSeconds) { return; }
    shownSeconds = s;
    var closing = !!view && view.screen === "opening";
    var el = $("countdown");
    el.setAttribute("data-seconds", s === null ? "" : String(s));
    setText(el, s === null ? "" : text(closing ? "close_countdown" : "countdown", { count: s }));
    el.classList.toggle("soon", s !== null && s <= SOON_S);
    if (s !== null && s <= SOON_S && s > 0 && !soonAnnounced && !$("timer").hidden &&
        !closing) {
      soonAnnounced = true;
      announce(text("countdown_soon", { count: s }));
    }
  }

  /* -------------------------------------------------------------- door tone */
  function toneWanted() {
    var s = secondsLeft();
    return !!view && view.screen === "opening" && openDoors(view).length > 0 &&
      s !== null && s <= TONE_FROM_S;
  }

  function tone() {
    var wanted = toneWanted();
    main.setAttribute("data-tone", wanted ? "on" : "off");
    if (!wanted) { nextBeepMs = null; return; }
    var now = performance.now();
    if (nextBeepMs !== null && now < nextBeepMs) { return; }
    nextBeepMs = now + BEEP_EVERY_MS;
    beep();
  }

  function beep() {
    beeps += 1;
    main.setAttribute("data-beeps", String(beeps));
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) { return; }
      audio = audio || new Context();
      if (audio.state === "suspended") { audio.resume(); }
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = 880;
      gain.gain.value = 0.25;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + BEEP_MS / 1000);
    } catch (e) {
      /* no sound device: the screen still asks */
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
      numberPausedUntilMs = v.number_paused_s > 0
        ? performance.now() + v.number_paused_s * 1000 : null;
      if (submitting && v.version !== submitVersion) { submitting = false; }
      if (v.screen !== previousScreen) { entry = ""; }
      if (v.screen === "idle" && previousScreen && previousScreen !== "idle") {
        lang = defaultLang;         // the next patron starts in the default language
        large = false;              // and with the usual text size
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
    return screen === "pin" ? entry.length === PIN_LENGTH : !!FREE_ENTRY[screen] && entry.length > 0;
  }

  function type(ch) {
    var screen = entryScreen();
    var max = FREE_ENTRY[screen] ? CODE_MAX : PIN_LENGTH;
    if (!screen || submitting || entry.length >= max) { return; }
    entry += ch;
    localError = "";
    render();
    if (screen === "pin" && entry.length === PIN_LENGTH) {
      // OK is next: the locker readies the patron's lock bus (no digits sent)
      post("/api/kiosk/action", JSON.stringify({ action: "pin_typed" })).catch(function () {});
    }
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
    var field = { pin: "pin", code: "code", number: "number" }[screen];
    var sent = {};
    sent[field] = entry;
    var body = JSON.stringify(sent);
    entry = "";                     // gone from the page before the request leaves
    sent = null;
    render();
    var sentVersion = submitVersion;
    post("/api/kiosk/" + field, body).then(function () {
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
    if (!view || !BUTTON_SCREENS[view.screen]) { return; }
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
  $("number-start").addEventListener("click", function () {
    if (!view || view.screen !== "idle" || !view.number_entry || pausedMinutes() > 0) { return; }
    post("/api/kiosk/action", JSON.stringify({ action: "pickup_number" })).catch(failed);
  });
  $("extend").addEventListener("click", function () { action("extend"); });
  $("cancel").addEventListener("click", function () { action("cancel"); });
  $("languages").addEventListener("click", function (e) {
    var button = e.target.closest("button[data-lang]");
    if (!button || !I18N.catalogues[button.getAttribute("data-lang")]) { return; }
    lang = button.getAttribute("data-lang");
    render();
  });
  $("large-text").addEventListener("click", function () {
    large = !large;
    render();
  });

  /* A physical keyboard: digits (and letters for a pickup code), Backspace
   * and Enter on the entry screens, Escape to cancel. */
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var onButton = e.target && e.target.tagName === "BUTTON";
    var screen = entryScreen();
    if (screen) {
      var allowed = FREE_ENTRY[screen] ? /^[0-9a-zA-Z]$/ : /^[0-9]$/;
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
    if (e.key === "Escape" && !$("cancel").hidden && !$("timer").hidden) {
      e.preventDefault();
      action("cancel");
    }
  });

  window.setInterval(tick, 250);
  render();
  poll();
})();

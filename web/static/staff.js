/* Bibbox staff page: overview, loading and unloading.
 *
 * No framework, no inline script (the page's CSP forbids it): the server
 * puts the first view in <script id="boot" type="application/json">.
 * Texts come from <script id="strings"> (web/static/staff.i18n.json); the
 * tiles from <script id="view">.  Texts are always
 * written with textContent, never as markup.
 *
 * Every state-changing call carries a fresh `idem` key; a call that meets
 * an expired session opens the login dialog and is sent again, with the
 * same key, after a successful login, so nothing scanned is lost and
 * nothing is done twice.  The loading draft is kept in sessionStorage (no
 * card number is ever in it: only an opaque token from the server).
 */
(function () {
  "use strict";

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  var boot = data("boot");
  var strings = data("strings") || {};
  var csrf = boot ? boot.csrf : "";

  function t(key, params) {
    var s = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    if (params) {
      s = s.replace(/\{(\w+)\}/g, function (m, k) {
        return params[k] !== undefined && params[k] !== null ? String(params[k]) : m;
      });
    }
    return s;
  }

  function $(sel, root) { return (root || document).querySelector(sel); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function uid() {
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function fmtDate(ts) {
    if (!ts) return "";
    var d = new Date(ts * 1000);
    return d.toLocaleDateString(boot.lang === "da" ? "da-DK" : "en-GB",
      { weekday: "short", day: "numeric", month: "short" }).replace(/\.$/, "");
  }

  var toastTimer = null;
  function toast(text) {
    var box = $("#toast");
    if (!box) return;
    box.textContent = text;
    box.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.classList.remove("show"); }, 6000);
  }

  function showError(box, err) {
    if (!box) return;
    box.textContent = err ? (err.message || t("err_" + err.error) || String(err)) : "";
  }

  /* ---------------------------------------------------------------- API */
  var reloginPromise = null;

  function relogin() {
    if (reloginPromise) return reloginPromise;
    var dialog = $("#relogin");
    reloginPromise = new Promise(function (resolve) {
      var form = $("#relogin-form");
      var err = $("#relogin-error");
      err.textContent = "";
      $("#relogin-password").value = "";
      function submit(ev) {
        ev.preventDefault();
        var name = $("#relogin-name").value;
        var password = $("#relogin-password").value;
        fetch("/staff/api/login-token", { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (tok) {
            return fetch("/staff/api/login", {
              method: "POST", credentials: "same-origin",
              headers: { "Content-Type": "application/json", "X-CSRF-Token": tok.csrf },
              body: JSON.stringify({ name: name, password: password })
            });
          })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            $("#relogin-password").value = "";
            if (!data.ok) { err.textContent = data.message; $("#relogin-password").focus(); return; }
            csrf = data.csrf;
            boot.user = data.name;
            form.removeEventListener("submit", submit);
            dialog.close();
            reloginPromise = null;
            resolve();
          })
          .catch(function () { err.textContent = t("err_network"); });
      }
      form.addEventListener("submit", submit);
      dialog.addEventListener("cancel", function (ev) { ev.preventDefault(); });
      if (!dialog.open) dialog.showModal();
      $("#relogin-password").focus();
    });
    return reloginPromise;
  }

  function api(method, path, body, retried) {
    var opts = { method: method, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch("/staff/api/" + path, opts).then(function (r) {
      return r.json().catch(function () {
        return { ok: false, error: "internal", message: t("err_internal") };
      }).then(function (data) {
        if (r.status === 401 && data.error === "login_required") {
          return relogin().then(function () { return api(method, path, body, retried); });
        }
        if (r.status === 400 && data.error === "csrf" && !retried) {
          return api("GET", "me").then(function (me) {
            csrf = me.csrf;
            return api(method, path, body, true);
          });
        }
        if (!data.ok) throw data;
        return data;
      });
    }, function () {
      throw { ok: false, error: "network", message: t("err_network") };
    });
  }

  function command(path, body) {
    body.idem = uid();          // one key per submit; kept across a re-login
    return api("POST", path, body);
  }

  /* ------------------------------------------------------------ live view */
  var view = data("view");
  var serverNow = boot ? boot.now : 0;     // the locker's clock, as of the last answer
  var listeners = [];

  function tileOf(n) {
    if (!view) return null;
    for (var i = 0; i < view.tiles.length; i++) if (view.tiles[i].n === n) return view.tiles[i];
    return null;
  }

  function startLive() {
    if (!view) return;
    var liveBox = $("#live");
    function loop() {
      api("GET", "state?version=" + view.version + "&wait=15").then(function (data) {
        liveBox.hidden = true;
        serverNow = data.now;
        if (data.version !== view.version) {
          view = data;
          listeners.forEach(function (fn) { fn(view); });
        }
        // over the server's bound on waiting polls: the state came at once, poll later
        if (data.retry_after) setTimeout(loop, data.retry_after * 1000); else loop();
      }, function () {
        liveBox.textContent = t("live_lost");
        liveBox.hidden = false;
        setTimeout(loop, 2000);
      });
    }
    listeners.forEach(function (fn) { fn(view); });
    loop();
  }

  function stateLabel(tile) { return t("state_" + tile.state); }

  function daysLeft(tile) {
    // local calendar days to the last pickup day, counted by the locker
    if (tile.days_left === null || tile.days_left === undefined) return null;
    return tile.days_left;
  }

  function daysText(tile) {
    var days = daysLeft(tile);
    if (days === null) return "";
    if (tile.state === "expired" || days < 0) return t("overdue");
    if (days === 0) return t("due_today");
    if (days === 1) return t("day_left");
    return t("days_left", { n: days });
  }

  /* ------------------------------------------------------------ overview */
  function overviewPage() {
    if (window.performance && performance.mark) performance.mark("bibbox-overview-start");
    var list = $("#tiles");
    var rendered = {};
    var current = null;     // the compartment in the dialog
    var dialog = $("#detail");

    function renderAlarms(v) {
      var ul = $("#alarm-list");
      ul.textContent = "";
      if (v.reader_online === false) ul.appendChild(el("li", { className: "alarm", text: t("reader_offline") }));
      v.alarms.forEach(function (a) {
        if (a.alarm === "reader_offline") return;
        ul.appendChild(el("li", { className: "alarm" }, [
          a.compartment ? el("strong", { text: t("compartment_n", { n: a.compartment }) + ": " }) : null,
          t("alarm_" + a.alarm)]));
      });
      if (!ul.children.length) ul.appendChild(el("li", { className: "ok", text: t("alarms_none") }));
    }

    function tileButton(tile) {
      var lines = [
        el("span", { className: "num", text: String(tile.n) }),
        el("span", { className: "size", text: tile.size }),
        el("span", { className: "state", text: stateLabel(tile) }),
        // a shut and locked door is the usual case: compact tiles leave it to the screen reader
        el("span", { className: "door door-" + tile.door + (tile.door === "closed" && tile.lock !== "released" ? " usual" : ""),
          text: t("door_" + tile.door) + (tile.lock === "released" ? " · " + t("lock_released") : "") })
      ];
      var days = daysText(tile);
      if (days) lines.push(el("span", { className: "days", text: days }));
      if (tile.holds.length) lines.push(el("span", { className: "pickups", text: tile.holds.map(function (h) { return h.pickup; }).join(", ") }));
      tile.alarms.forEach(function (a) {
        lines.push(el("span", { className: "alarm" }, [el("span", { className: "mark", text: "⚠ " }),
          el("span", { className: "what", text: t("alarm_" + a) })]));
      });
      if (tile.oos) lines.push(el("span", { className: "oos", text: tile.oos }));
      // The name is the visible text (WCAG 2.5.3), with "Rum" read before the number.
      lines[0] = el("span", { className: "num" }, [el("span", { className: "vh", text: t("compartment_word") + " " }), String(tile.n)]);
      return el("button", { type: "button", className: "tile state-" + tile.state + (tile.alarms.length ? " has-alarm" : ""),
        "data-n": tile.n, "data-state": tile.state, "data-testid": "tile-" + tile.n,
        onclick: function () { openDetail(tile.n); } }, lines);
    }

    /* With configured places (boot.front) the tiles stand where their doors
       are in the cabinet's front; on a phone the CSS puts them back in a list. */
    var places = {};
    if (boot.front) {
      list.classList.add("cabinet");
      // many columns: narrow tiles that show the number, size and state (the rest is read out)
      list.classList.toggle("dense", boot.front.columns > DENSE_COLUMNS);
      list.style.setProperty("--cols", String(boot.front.columns));
      list.style.setProperty("--rows", String(boot.front.rows));
      boot.front.doors.forEach(function (d) { places[d.n] = d; });
    }

    function place(li, n) {
      var d = places[n];
      if (!d) return;
      li.style.gridColumn = String(d.column);
      li.style.gridRow = d.row + " / span " + d.rows;
    }

    function render(v) {
      renderAlarms(v);
      var seen = {};
      v.tiles.forEach(function (tile, i) {
        var key = JSON.stringify([tile.fp, tile.door, tile.lock, daysLeft(tile), tile.opening]);
        seen[tile.n] = true;
        var li = rendered[tile.n];
        if (!li) {
          li = el("li", { "data-n": tile.n });
          place(li, tile.n);
          rendered[tile.n] = li;
          list.appendChild(li);
        } else if (li.dataset.key === key) {
          return;
        }
        li.dataset.key = key;
        var hadFocus = li.contains(document.activeElement);
        li.textContent = "";
        li.appendChild(tileButton(tile));
        if (hadFocus) li.firstChild.focus();
      });
      Object.keys(rendered).forEach(function (n) {
        if (!seen[n]) { rendered[n].remove(); delete rendered[n]; }
      });
      finder.apply(v, false);
      if (current !== null && dialog.open) fillDetail(true);
    }

    var finder = overviewFinder(list, rendered);

    /* Our own actions on a compartment change its tile too: they must not
       be announced as someone else's.  ``own[n]`` is set while one of ours
       is under way; it ends once the locker answered and (for a door we
       opened) the opening is over.  Only changes outside it are others'. */
    var own = {};
    var openedHere = {};     // compartments this page opened: their reason


    function ownChange(tile) {
      var mine = own[tile.n];
      if (!mine) return false;
      if (mine.answered && !(mine.opening && tile.opening)) delete own[tile.n];
      return true;
    }

    function act(path, body, done) {
      var err = $("#detail-error");
      var n = body.compartment || current;
      err.textContent = "";
      $("#detail-done").textContent = "";
      var before = tileOf(n);
      own[n] = { answered: false, opening: path === "open", fp: before ? before.fp : null };
      return command(path, body).then(function (data) {
        var mine = own[n], now = tileOf(n);
        if (mine) {
          mine.answered = true;
          // our change was already seen (the live view beat the answer): done
          if (!mine.opening && now && now.fp !== mine.fp) delete own[n];
        }
        toast(done);
        if (dialog.open) $("#detail-done").textContent = done;   // the toast is under the overlay
        return data;
      }, function (e) { delete own[n]; showError(err, e); });
    }

    function reasonOrComplain() {
      var reason = $("#open-reason").value.trim();
      if (!reason) {
        $("#detail-error").textContent = t("err_reason_required");
        $("#open-reason").focus();
        return null;
      }
      return reason;
    }

    var lastFp = null;

    function fillDetail(fromLive) {
      var tile = tileOf(current);
      if (!tile) return;
      if (fromLive && lastFp && lastFp !== tile.fp && !ownChange(tile)) toast(t("changed_notice", { n: tile.n }));
      lastFp = tile.fp;
      $("#detail-title").textContent = t("compartment_n", { n: tile.n });
      $("#detail-summary").textContent = [t("size", { size: tile.size }), stateLabel(tile),
        t("door_" + tile.door), daysText(tile), tile.oos ? t("oos_reason", { reason: tile.oos }) : ""]
        .filter(Boolean).join(" · ");
      var holds = $("#detail-holds");
      holds.textContent = "";
      if (!tile.holds.length) holds.appendChild(el("li", { text: t("no_holds") }));
      tile.holds.forEach(function (h) {
        var moveInput = el("input", { inputmode: "numeric", "aria-label": t("move_to") + " (" + h.pickup + ")", className: "short" });
        holds.appendChild(el("li", { className: "hold" }, [
          el("span", { text: t("hold_line", { pickup: h.pickup, items: h.items, patron: h.patron,
            state: t("hold_state_" + h.state) }) }),
          el("span", { className: "actions" }, [
            h.state === "cancelled" ? null : el("button", { type: "button", className: "btn", text: t("cancel_hold"),
              onclick: function () {
                var reason = reasonOrComplain();
                if (reason) act("cancel", { hold_id: h.id, reason: reason }, t("done_cancelled"));
              } }),
            moveInput,
            el("button", { type: "button", className: "btn", text: t("move_hold"),
              onclick: function () {
                var to = parseInt(moveInput.value, 10);
                var target = tileOf(to);
                act("move", { hold_id: h.id, to: to, fp: target ? target.fp : null }, t("done_moved", { n: to }));
              } })
          ])
        ]));
      });
      var alarms = $("#detail-alarms");
      alarms.textContent = "";
      tile.alarms.forEach(function (a) {
        alarms.appendChild(el("button", { type: "button", className: "btn", "data-testid": "clear-" + a,
          text: t("clear_alarm", { alarm: t("alarm_" + a) }),
          onclick: function () { act("alarm/clear", { alarm: a, compartment: tile.n }, t("done_cleared")); } }));
      });
      // After a door staff opened (for a patron on the phone) closes again,
      // offer to mark its ready holds collected, with the same reason.
      var ready = tile.holds.some(function (h) { return h.state === "ready"; });
      $("#collected-box").hidden = !(ready && openedHere[tile.n] && !tile.opening && tile.door === "closed");
      $("#service-btn").textContent = tile.oos ? t("back_in_service") : t("take_out_of_service");
      var needsEmpty = tile.holds.some(function (h) { return h.state === "expired" || h.state === "cancelled"; });
      $("#removed-btn").hidden = !needsEmpty;
    }

    function openDetail(n) {
      current = n;
      lastFp = null;
      $("#detail-error").textContent = "";
      $("#open-reason").value = "";
      fillDetail(false);
      dialog.showModal();
      $("#open-reason").focus();
    }

    dialog.addEventListener("close", function () {
      var btn = list.querySelector('li:not(.out) > button[data-n="' + current + '"]');
      current = null;
      if (btn) btn.focus(); else $("#tile-search").focus();     // filtered out meanwhile
    });
    dialog.querySelector("[data-close]").addEventListener("click", function () { dialog.close(); });
    $("#open-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var tile = tileOf(current);
      var reason = reasonOrComplain();
      if (!tile || !reason) return;
      act("open", { compartment: tile.n, reason: reason, purpose: "staff", fp: tile.fp },
        t("done_opened", { n: tile.n })).then(function (data) { if (data) openedHere[tile.n] = reason; });
    });
    $("#collected-btn").addEventListener("click", function () {
      var tile = tileOf(current);
      if (!tile) return;
      var reason = $("#open-reason").value.trim() || openedHere[tile.n];
      act("collected", { compartment: tile.n, reason: reason, fp: tile.fp },
        t("done_marked_collected", { n: tile.n })).then(function (data) {
        if (data) { delete openedHere[tile.n]; fillDetail(false); }
      });
    });
    $("#service-btn").addEventListener("click", function () {
      var tile = tileOf(current);
      if (!tile) return;
      if (tile.oos) {
        act("service", { compartment: tile.n, out_of_service: false, fp: tile.fp }, t("done_service", { n: tile.n }));
      } else {
        var reason = reasonOrComplain();
        if (reason) act("service", { compartment: tile.n, out_of_service: true, reason: reason, fp: tile.fp },
          t("done_service", { n: tile.n }));
      }
    });
    $("#removed-btn").addEventListener("click", function () {
      var tile = tileOf(current);
      if (tile) act("removed", { compartment: tile.n, reason: "unloaded", fp: tile.fp }, t("done_removed", { n: tile.n }));
    });

    listeners.push(render);
    startLive();
    // bench/bench_staff_overview.py reads these two marks: the first render's time
    if (window.performance && performance.mark) performance.mark("bibbox-overview-rendered");
  }

  /* Filters (all, free, ready, alarms, out of service) with their counts,
     and a search by compartment number, pickup number or hold id, over the
     overview's tiles.  ``apply(view)`` runs after every render, so the
     choice outlives the live updates; it is kept for the tab in
     sessionStorage.  A tile that no longer matches leaves the list (on the
     cabinet's front an empty place stays), except the one with the focus:
     it goes once the focus does.  The status line is a live region; it
     changes only when its text does. */
  var DENSE_COLUMNS = 12;
  var FINDER_KEY = "bibbox-staff-overview";
  var FILTERS = {
    all: function () { return true; },
    free: function (tile) { return tile.state === "free"; },
    ready: function (tile) { return tile.holds.some(function (h) { return h.state === "ready"; }); },
    alarms: function (tile) { return tile.alarms.length > 0; },
    oos: function (tile) { return Boolean(tile.oos) || tile.state === "out_of_service"; }
  };

  function tileMatches(tile, query) {
    if (!query) return true;
    if (String(tile.n) === query) return true;
    var lower = query.toLowerCase();
    return tile.holds.some(function (h) {
      return String(h.pickup).toLowerCase() === lower || String(h.id).toLowerCase() === lower;
    });
  }

  function overviewFinder(list, rendered) {
    var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
    var search = $("#tile-search"), status = $("#finder-status");
    var chosen = { filter: "all", query: "" };
    try {
      var saved = JSON.parse(sessionStorage.getItem(FINDER_KEY) || "null");
      if (saved && FILTERS[saved.filter]) chosen.filter = saved.filter;
      if (saved && typeof saved.query === "string") chosen.query = saved.query.slice(0, 40);
    } catch (e) { /* private mode or junk: start from all */ }
    search.value = chosen.query;
    var statusTimer = null, lastView = null;

    function save() {
      try { sessionStorage.setItem(FINDER_KEY, JSON.stringify(chosen)); } catch (e) { /* private mode */ }
    }

    function query() { return chosen.query.trim().replace(/^#/, "").trim(); }

    function label(key) { return t("filter_" + key); }

    function statusText(shown, total, elsewhere) {
      var q = query();
      if (!q && chosen.filter === "all") return t("finder_all", { total: total });
      if (shown) return t("finder_shown", { shown: shown, total: total });
      if (!q) return t("finder_empty", { filter: label(chosen.filter) });
      if (elsewhere) return t("finder_elsewhere", { query: q, filter: label(chosen.filter) });
      return t("finder_none", { query: q });
    }

    /* Show the tiles that match; returns the first one shown (or null). */
    function apply(v, typing) {
      if (!v) return null;
      lastView = v;
      var counts = {}, shown = 0, elsewhere = 0, first = null, q = query();
      var keep = FILTERS[chosen.filter];
      Object.keys(FILTERS).forEach(function (k) { counts[k] = 0; });
      v.tiles.forEach(function (tile) {
        Object.keys(FILTERS).forEach(function (k) { if (FILTERS[k](tile)) counts[k] += 1; });
        var found = tileMatches(tile, q);
        var show = found && keep(tile);
        if (found && !show) elsewhere += 1;
        if (show) { shown += 1; if (!first) first = tile.n; }
        var li = rendered[tile.n];
        if (!li) return;
        if (!show && li.contains(document.activeElement)) show = true;   // not from under the focus
        if (li.classList.contains("out") === show) {
          li.classList.toggle("out", !show);
          if (show) li.removeAttribute("aria-hidden"); else li.setAttribute("aria-hidden", "true");
        }
      });
      buttons.forEach(function (b) {
        var key = b.getAttribute("data-filter");
        var count = b.querySelector(".count");
        var text = " (" + counts[key] + ")";
        if (count.textContent !== text) count.textContent = text;
        var pressed = String(key === chosen.filter);
        if (b.getAttribute("aria-pressed") !== pressed) b.setAttribute("aria-pressed", pressed);
        b.classList.toggle("has-some", key === "alarms" && counts.alarms > 0);
      });
      var text = statusText(shown, v.tiles.length, elsewhere);
      clearTimeout(statusTimer);
      if (typing) {            // one announcement when the typing pauses, not one a key
        statusTimer = setTimeout(function () { if (status.textContent !== text) status.textContent = text; }, 400);
      } else if (status.textContent !== text) {
        status.textContent = text;
      }
      return first;
    }

    buttons.forEach(function (b) {
      b.addEventListener("click", function () {
        chosen.filter = b.getAttribute("data-filter");
        save();
        apply(lastView || view, false);
      });
    });
    search.addEventListener("input", function () {
      chosen.query = search.value.slice(0, 40);
      save();
      apply(lastView || view, true);
    });
    $("#search-form").addEventListener("submit", function (ev) {
      ev.preventDefault();                 // Enter: go to the (first) compartment found
      var first = apply(lastView || view, false);
      var btn = first === null ? null : list.querySelector('button[data-n="' + first + '"]');
      if (!btn) return;
      btn.scrollIntoView({ block: "center" });
      btn.focus();
    });
    // a tile kept for the focus goes once the focus has left it
    list.addEventListener("focusout", function () {
      setTimeout(function () { apply(lastView || view, false); }, 0);
    });

    return { apply: apply };
  }

  /* ------------------------------------------------------------ loading */
  var STORE_KEY = "bibbox-staff-load";

  function loadPage() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null"); } catch (e) { saved = null; }
    var draft = (saved && saved.draft) || newDraft();
    var pending = (saved && saved.pending) || [];
    var lastPatron = (saved && saved.lastPatron) || null;
    var announced = boot.announced || [];
    var errBox = $("#load-error");
    var itemInput = $("#item"), cardInput = $("#card");
    var autoOpen = $("#auto-open");
    autoOpen.checked = localStorage.getItem("bibbox-auto-open") === "1";
    autoOpen.addEventListener("change", function () {
      localStorage.setItem("bibbox-auto-open", autoOpen.checked ? "1" : "0");
    });

    function newDraft() {
      return { id: uid(), items: [], patron: null, pseudonym: null, hold: null, proposal: null, here: [] };
    }

    function save() {
      try {
        sessionStorage.setItem(STORE_KEY, JSON.stringify({ draft: draft, pending: pending, lastPatron: lastPatron }));
      } catch (e) { /* private mode: the page still works */ }
    }

    function size() {
      var checked = document.querySelector('input[name="size"]:checked');
      return checked ? checked.value : "";
    }

    function chosenDoor() {
      var n = parseInt($("#door").value, 10);
      if (n > 0) return n;
      return draft.proposal && draft.proposal.compartment ? draft.proposal.compartment : null;
    }

    function renderDraft() {
      var ul = $("#items");
      ul.textContent = "";
      var barcodes = draft.hold ? draft.hold.items.map(function (i) { return i.barcode; }) : draft.items;
      if (!barcodes.length) ul.appendChild(el("li", { className: "hint", text: t("items_empty") }));
      barcodes.forEach(function (b) {
        var scanned = draft.items.indexOf(b) >= 0;
        var title = "";
        if (draft.hold) draft.hold.items.forEach(function (i) { if (i.barcode === b) title = i.title; });
        ul.appendChild(el("li", { className: scanned ? "scanned" : "" }, [
          el("span", { text: (draft.hold ? (scanned ? "✓ " : "○ ") : "") + b + (title ? " – " + title : "") }),
          draft.hold ? null : el("button", { type: "button", className: "btn quiet small", text: "✕",
            "aria-label": t("remove_item", { barcode: b }),
            onclick: function () {
              draft.items = draft.items.filter(function (x) { return x !== b; });
              save(); renderDraft(); itemInput.focus();
            } })
        ]));
      });
      var match = $("#match");
      if (draft.hold) {
        match.hidden = false;
        match.textContent = t("announced_match", { pickup: draft.hold.pickup_number, patron: draft.hold.patron,
          scanned: draft.items.filter(function (b) { return draft.hold.items.some(function (i) { return i.barcode === b; }); }).length,
          items: draft.hold.items.length });
      } else {
        match.hidden = true;
      }
      var chosen = $("#patron-chosen");
      if (draft.hold) {
        chosen.hidden = false;
        chosen.textContent = t("hold_chosen", { pickup: draft.hold.pickup_number, patron: draft.hold.patron });
      } else if (draft.patron) {
        chosen.hidden = false;
        chosen.textContent = t("patron_chosen", { patron: draft.pseudonym }) +
          (draft.here && draft.here.length ? " " + t("patron_has", { list: draft.here.join(", ") }) : "");
      } else {
        chosen.hidden = true;
        chosen.textContent = "";
        if (lastPatron) {
          chosen.hidden = false;
          chosen.appendChild(el("button", { type: "button", className: "btn", id: "same-patron", text: t("same_patron") + " (" + lastPatron.pseudonym + ")",
            onclick: function () {
              draft.patron = lastPatron.token;
              draft.pseudonym = lastPatron.pseudonym;
              save(); propose().then(function () { itemInput.focus(); });
            } }));
        }
      }
      var p = $("#proposal");
      var door = chosenDoor();
      if (draft.proposal && !draft.proposal.compartment) p.textContent = t("no_proposal");
      else if (draft.proposal) p.textContent = t("proposed", { n: draft.proposal.compartment, size: draft.proposal.size });
      else p.textContent = "";
      $("#open-btn").textContent = door ? t("open_door_n", { n: door }) : t("open_chosen");
      $("#open-btn").dataset.n = door || "";
      renderAnnounced();
    }

    function renderAnnounced() {
      var ul = $("#announced");
      ul.textContent = "";
      if (!announced.length) ul.appendChild(el("li", { className: "hint", text: t("announced_none") }));
      announced.forEach(function (h) {
        ul.appendChild(el("li", {}, [el("button", { type: "button", className: "btn choice",
          text: t("announced_pick", { pickup: h.pickup_number, patron: h.patron, items: h.items.length }),
          onclick: function () { chooseHold(h); } })]));
      });
    }

    function chooseHold(h) {
      draft.hold = h;
      draft.patron = null;
      draft.pseudonym = h.patron;
      save();
      propose().then(function () { $("#open-btn").focus(); });
    }

    function propose() {
      var body = { size: size() };
      if (draft.hold) body.hold_id = draft.hold.hold_id;
      else if (draft.patron) body.patron = draft.patron;
      else { renderDraft(); return Promise.resolve(); }
      return api("POST", "propose", body).then(function (data) {
        draft.proposal = { compartment: data.compartment, size: data.size };
        save(); renderDraft();
      }, function (e) {
        showError(errBox, e);
        if (e.error === "patron_expired") { draft.patron = null; save(); renderDraft(); cardInput.focus(); }
      });
    }

    // Scans are handled one after the other, in the order they came: a
    // scanner types faster than the locker answers.
    var itemQueue = Promise.resolve();

    function keepFocusOnItem() {
      if (document.activeElement === document.body || !document.activeElement) itemInput.focus();
    }

    function handleItem(text) {
      if (!text) {
        if (draft.patron || draft.hold) $("#open-btn").focus();
        else if (draft.items.length) cardInput.focus();
        return Promise.resolve();
      }
      return api("POST", "item", { barcode: text }).then(function (data) {
        var b = data.barcode;
        if (data.announced) {
          if (draft.hold && draft.hold.hold_id !== data.announced.hold_id || (!draft.hold && (draft.patron || draft.items.length))) {
            showError(errBox, { message: t("announced_match", { pickup: data.announced.pickup_number,
              patron: data.announced.patron, scanned: 1, items: data.announced.items.length }) });
            keepFocusOnItem();
            return;
          }
          if (!draft.hold) {
            draft.hold = data.announced;
            draft.pseudonym = data.announced.patron;
            if (draft.items.indexOf(b) < 0) draft.items.push(b);
            save();
            return propose().then(function () {
              if (autoOpen.checked && draft.proposal && draft.proposal.compartment) return openDoor();
              $("#open-btn").focus();
            });
          }
        } else if (draft.hold) {
          showError(errBox, { message: t("err_hold_not_announced") });
          keepFocusOnItem();
          return;
        }
        if (draft.items.indexOf(b) < 0) draft.items.push(b);
        save(); renderDraft();
        keepFocusOnItem();
      }, function (e) { showError(errBox, e); keepFocusOnItem(); });
    }

    $("#item-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = itemInput.value.trim();
      itemInput.value = "";
      showError(errBox, null);
      itemQueue = itemQueue.then(function () { return handleItem(text); });
    });

    $("#card-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = cardInput.value;
      cardInput.value = "";           // the clear number leaves the page at once
      showError(errBox, null);
      if (!text.trim()) return;
      api("POST", "patron", { card: text, size: size() }).then(function (data) {
        text = null;
        draft.hold = null;
        draft.patron = data.patron;
        draft.pseudonym = data.pseudonym;
        draft.here = data.compartments;
        draft.proposal = { compartment: data.proposal, size: (tileOf(data.proposal) || {}).size || "" };
        save(); renderDraft();
        if (!draft.items.length) { itemInput.focus(); return; }
        if (autoOpen.checked && data.proposal) return openDoor();
        $("#open-btn").focus();
      }, function (e) { text = null; showError(errBox, e); cardInput.focus(); });
    });

    document.querySelectorAll('input[name="size"]').forEach(function (r) {
      r.addEventListener("change", function () { propose(); });
    });
    $("#door").addEventListener("input", renderDraft);
    $("#start-over").addEventListener("click", function () {
      draft = newDraft(); $("#door").value = ""; save(); renderDraft(); showError(errBox, null); itemInput.focus();
    });

    var opening = false;
    function openDoor() {
      if (opening) return Promise.resolve();     // a double Enter or click
      showError(errBox, null);
      if (!draft.hold && !draft.patron) { showError(errBox, { message: t("err_patron_expired") }); cardInput.focus(); return Promise.resolve(); }
      if (!draft.hold && !draft.items.length) { showError(errBox, { message: t("err_no_items") }); itemInput.focus(); return Promise.resolve(); }
      var door = chosenDoor();
      var tile = door ? tileOf(door) : null;
      var days = parseInt($("#days").value, 10);
      var body = { draft: draft.id, size: size(), compartment: door, fp: tile ? tile.fp : null,
        pickup_days: days > 0 ? days : null };
      if (draft.hold) body.hold_id = draft.hold.hold_id;
      else { body.items = draft.items; body.patron = draft.patron; }
      opening = true;
      $("#open-btn").setAttribute("aria-busy", "true");
      return command("load", body).then(function (data) {
        pending.unshift({ hold_id: data.hold_id, compartment: data.compartment, pickup: data.pickup_number,
          deadline: data.deadline, state: data.state, status: data });
        pending = pending.slice(0, 30);
        if (draft.patron) lastPatron = { token: draft.patron, pseudonym: draft.pseudonym };
        if (draft.hold) announced = announced.filter(function (h) { return h.hold_id !== draft.hold.hold_id; });
        draft = newDraft();
        $("#door").value = "";
        save(); renderDraft(); renderPending();
        itemInput.focus();
      }, function (e) {
        showError(errBox, e);
        if (e.error === "patron_expired") { draft.patron = null; save(); renderDraft(); cardInput.focus(); return; }
        if (["stale", "compartment_in_use", "busy", "out_of_service", "no_free_compartment"].indexOf(e.error) >= 0) {
          $("#door").value = "";
          propose().then(function () { $("#open-btn").focus(); });
        }
      }).then(function () {
        opening = false;
        $("#open-btn").removeAttribute("aria-busy");
      });
    }

    $("#door-form").addEventListener("submit", function (ev) { ev.preventDefault(); openDoor(); });

    function statusText(p) {
      var s = p.status || {};
      if (p.state === "ready") return t("st_ready", { n: p.compartment, pickup: p.pickup, date: fmtDate(s.deadline || p.deadline) });
      if (p.state === "loading") {
        if ((s.alarms || []).indexOf("door_held_open") >= 0) return t("st_held_open", { n: p.compartment });
        if (s.door === "closed" && s.opening && s.opening.seen_open) return t("st_checking", { n: p.compartment });
        if (s.door === "open" || (s.opening && s.opening.seen_open)) return t("st_open", { n: p.compartment });
        return t("st_opening", { n: p.compartment });
      }
      if (p.state === "announced") {
        if (s.load_unconfirmed) return t("st_no_item", { n: s.load_unconfirmed });
        var tile = tileOf(p.compartment);
        return tile && tile.alarms.indexOf("door_jammed") >= 0 ? t("st_jammed", { n: p.compartment }) : t("st_failed", { n: p.compartment });
      }
      return t("st_cancelled");
    }

    function renderPending() {
      var ul = $("#pending");
      ul.textContent = "";
      $(".progress").hidden = !pending.length;
      pending.forEach(function (p) {
        var kids = [el("span", { className: "status", text: statusText(p) })];
        if (p.state === "announced") {
          if (p.retry) {
            kids.push(el("button", { type: "button", className: "btn primary", "data-testid": "retry-" + p.hold_id,
              text: t(p.retry === (p.status || {}).load_unconfirmed ? "retry_same" : "retry_door", { n: p.retry }),
              onclick: function () { retry(p); } }));
          } else {
            kids.push(el("button", { type: "button", className: "btn", text: t("retry_choose"),
              onclick: function () { chooseHold({ hold_id: p.hold_id, pickup_number: p.pickup, patron: (p.status || {}).patron,
                items: [] }); } }));
          }
        }
        if (p.state !== "loading") {
          kids.push(el("button", { type: "button", className: "btn quiet small", text: t("dismiss"),
            onclick: function () { pending = pending.filter(function (x) { return x !== p; }); save(); renderPending(); } }));
        }
        ul.appendChild(el("li", { className: "pend pend-" + p.state, "data-hold": p.hold_id, "data-state": p.state }, kids));
      });
    }

    function retry(p) {
      var tile = tileOf(p.retry);
      p.busy = true;
      command("load", { hold_id: p.hold_id, compartment: p.retry, fp: tile ? tile.fp : null }).then(function (data) {
        p.compartment = data.compartment; p.state = data.state; p.status = data; p.retry = null;
        save(); renderPending(); itemInput.focus();
      }, function (e) {
        showError(errBox, e);
        if (p.retry === (p.status || {}).load_unconfirmed) p.tried_same = true;   // propose another
        p.retry = null;
        refreshPending(true);
      });
    }

    function refreshPending(force) {
      var live = pending.filter(function (p) { return force || p.state === "loading" || (p.state === "announced" && !p.retry); });
      if (!live.length) return;
      var ids = live.map(function (p) { return p.hold_id; }).join(",");
      api("GET", "holds?ids=" + encodeURIComponent(ids)).then(function (data) {
        var jobs = [];
        data.holds.forEach(function (s) {
          pending.forEach(function (p) {
            if (p.hold_id !== s.hold_id) return;
            if (s.state === "announced" && p.state !== "announced") p.retry = null;
            p.state = s.state; p.status = s;
            if (s.compartment) p.compartment = s.compartment;
            if (s.state === "announced" && !p.retry && s.load_unconfirmed && !p.tried_same) {
              p.retry = s.load_unconfirmed;     // the sensor saw nothing: load the same door again
            } else if (s.state === "announced" && !p.retry) {
              jobs.push(api("POST", "propose", { hold_id: p.hold_id }).then(function (r) { p.retry = r.compartment; }, function () {}));
            }
          });
        });
        return Promise.all(jobs);
      }).then(function () { save(); renderPending(); }, function () {});
    }

    listeners.push(function () { refreshPending(false); renderDraft(); });
    renderDraft(); renderPending();
    startLive();
    itemInput.focus();
  }

  /* ------------------------------------------------------------ unloading */
  function unloadPage() {
    var rows = boot.unload || [];
    var errBox = $("#unload-error");

    function groups() {
      var byN = {}, order = [];
      rows.forEach(function (r) {
        if (!byN[r.compartment]) { byN[r.compartment] = { n: r.compartment, why: [], items: [], holds: [] }; order.push(r.compartment); }
        var g = byN[r.compartment];
        if (g.why.indexOf(r.why) < 0) g.why.push(r.why);
        if (r.hold_id) g.holds.push(r.hold_id);
        g.items = g.items.concat(r.items);
      });
      return order.map(function (n) { return byN[n]; });
    }

    function render() {
      var ul = $("#unload");
      var focusKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
      ul.textContent = "";
      var gs = groups();
      $("#unload-none").hidden = gs.length > 0;
      gs.forEach(function (g) {
        var tile = tileOf(g.n) || {};
        var whyText = g.why.map(function (w) { return t("why_" + w); }).join(", ");
        var doorText = tile.door ? t("door_" + tile.door) : "";
        var status = tile.opening ? (tile.door === "open" ? t("take_out_close") : t("st_opening", { n: g.n })) : doorText;
        var kids = [
          el("h2", { text: t("compartment_n", { n: g.n }) }),
          el("p", { className: "why", text: whyText }),
          el("ul", { className: "items" }, g.items.map(function (i) { return el("li", { text: i.barcode + (i.title ? " – " + i.title : "") }); })),
          el("p", { className: "status", "data-testid": "unload-status-" + g.n, text: status }),
          el("div", { className: "actions" }, [
            el("button", { type: "button", className: "btn primary", "data-key": "open-" + g.n, "data-testid": "unload-open-" + g.n,
              text: t("open_for_unload", { n: g.n }),
              onclick: function () {
                showError(errBox, null);
                var tl = tileOf(g.n);
                command("open", { compartment: g.n, reason: t("unload_reason", { why: whyText }), purpose: "unloading",
                  fp: tl ? tl.fp : null }).then(function () {
                  toast(t("done_opened", { n: g.n }));
                  var c = document.querySelector('[data-key="confirm-' + g.n + '"]');
                  if (c) c.focus();
                }, function (e) { showError(errBox, e); });
              } }),
            g.holds.length ? el("button", { type: "button", className: "btn", "data-key": "confirm-" + g.n, "data-testid": "unload-confirm-" + g.n,
              text: t("confirm_removed"),
              onclick: function () {
                showError(errBox, null);
                var tl = tileOf(g.n);
                command("removed", { compartment: g.n, reason: "unloaded: " + g.why.join(", "), fp: tl ? tl.fp : null }).then(function () {
                  toast(t("done_removed", { n: g.n }));
                  return refresh();
                }, function (e) { showError(errBox, e); });
              } }) : null
          ].concat((tile.alarms || []).map(function (a) {
            return el("button", { type: "button", className: "btn", "data-key": "clear-" + g.n + a, text: t("clear_alarm", { alarm: t("alarm_" + a) }),
              onclick: function () {
                command("alarm/clear", { alarm: a, compartment: g.n }).then(function () { toast(t("done_cleared")); return refresh(); },
                  function (e) { showError(errBox, e); });
              } });
          })))
        ];
        ul.appendChild(el("li", { className: "unload-row", "data-n": g.n }, kids));
      });
      if (focusKey) {
        var f = document.querySelector('[data-key="' + focusKey + '"]');
        if (f) f.focus();
      }
    }

    function refresh() {
      return api("GET", "unload").then(function (data) { rows = data.unload; render(); }, function (e) { showError(errBox, e); });
    }

    listeners.push(function () { refresh(); });
    render();
    startLive();
    var first = document.querySelector("#unload button");
    if (first) first.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    if (page === "overview") overviewPage();
    else if (page === "load") loadPage();
    else if (page === "unload") unloadPage();
  });

  window.BibboxStaff = { t: t, api: api };
})();

/* The simulator's control panel (/sim): doors, relays, the card reader.
 *
 * Polls GET /sim/state; doors via POST /sim/doors/<n> {"open": bool} and
 * /sim/doors/<n>/jam {"jammed": bool}; cards via POST /sim/card
 * {"data": "<card>\r"} (the demo reader expects a CR suffix); item sensors via
 * /sim/doors/<n>/item {"present": bool}; board doors show their bus, board and lock.
 */
(function () {
  "use strict";

  var POLL_MS = 400;
  var lastKey = "";

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function log(message) { $("log").textContent = message; }

  function post(url, data) {
    return fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.message || ("HTTP " + r.status)); }
        return body;
      });
    }).then(function (body) { refresh(); return body; })
      .catch(function (err) { log("Failed: " + err.message); });
  }

  function presentCard(card) {
    return post("/sim/card", { data: card + "\r" }).then(function (r) {
      if (r) { log("Presented a card (" + r.bytes + " bytes)."); }
    });
  }

  function button(label, testid, onClick) {
    var b = el("button", { type: "button", "data-testid": testid }, label);
    b.addEventListener("click", onClick);
    return b;
  }

  function renderDoors(state) {
    var box = $("doors");
    box.textContent = "";
    Object.keys(state.doors).forEach(function (n) {
      var door = state.doors[n];
      var relay = state.relays[n];
      var tile = el("div", {
        "class": "tile" + (door.open ? " open" : "") + (door.jammed ? " jammed" : ""),
        "data-testid": "sim-door-" + n, "data-open": String(door.open),
        "data-jammed": String(door.jammed), "data-relay": relay
      });
      tile.appendChild(el("h3", {}, "Compartment " + n));
      var facts = el("div", { "class": "facts" });
      facts.appendChild(el("span", { "class": "fact" + (door.open ? " open" : "") },
        door.open ? "door open" : "door closed"));
      facts.appendChild(el("span", { "class": "fact" + (relay === "on" ? " on" : "") },
        "relay " + relay));
      if (door.jammed) { facts.appendChild(el("span", { "class": "fact on" }, "jammed")); }
      if (door.item !== null && door.item !== undefined) {
        facts.appendChild(el("span", { "class": "fact" }, door.item ? "item inside" : "empty"));
      }
      if (door.bus !== undefined) {
        facts.appendChild(el("span", { "class": "fact" },
          door.bus + "/" + door.board + " lock " + door.lock));
      }
      tile.appendChild(facts);
      var holds = (state.holds || {})[n] || [];
      tile.appendChild(el("p", { "class": "holds", "data-testid": "sim-holds-" + n },
        holds.length ? holds.map(function (h) {
          return "Hold " + h.pickup + " (" + h.state + ", " + h.items +
            (h.items === 1 ? " item)" : " items)");
        }).join("; ") : "No hold"));
      var buttons = el("div", { "class": "buttons" });
      buttons.appendChild(button("Open", "sim-open-" + n,
        function () { post("/sim/doors/" + n, { open: true }); }));
      buttons.appendChild(button("Close", "sim-close-" + n,
        function () { post("/sim/doors/" + n, { open: false }); }));
      buttons.appendChild(button(door.jammed ? "Unjam" : "Jam", "sim-jam-" + n,
        function () { post("/sim/doors/" + n + "/jam", { jammed: !door.jammed }); }));
      if (door.item !== null && door.item !== undefined) {
        buttons.appendChild(button(door.item ? "Take item" : "Put item", "sim-item-" + n,
          function () { post("/sim/doors/" + n + "/item", { present: !door.item }); }));
      }
      tile.appendChild(buttons);
      box.appendChild(tile);
    });
  }

  function renderPatrons(patrons) {
    var body = $("patrons");
    body.textContent = "";
    patrons.forEach(function (p, i) {
      var row = el("tr");
      row.appendChild(el("td", {}, p.name));
      row.appendChild(el("td", {}, p.card));
      row.appendChild(el("td", {}, p.kind || ""));
      row.appendChild(el("td", {}, p.pin));
      row.appendChild(el("td", {}, p.block_reason ? "blocked: " + p.block_reason : ""));
      var cell = el("td");
      cell.appendChild(button("Present card", "sim-present-" + i,
        function () { presentCard(p.card); }));
      row.appendChild(cell);
      body.appendChild(row);
    });
  }

  function render(state) {
    $("reader").textContent = "reader: " + state.reader;
    var key = JSON.stringify([state.doors, state.relays, state.holds]);
    if (key !== lastKey) {
      lastKey = key;
      var focused = document.activeElement && document.activeElement.getAttribute("data-testid");
      renderDoors(state);
      var again = focused && document.querySelector('[data-testid="' + focused + '"]');
      if (again) { again.focus(); }   // keyboard users keep their place
    }
    if (!$("patrons").children.length) { renderPatrons(state.patrons || []); }
  }

  function refresh() {
    return fetch("/sim/state", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () { log("The simulator is not answering."); });
  }

  function loop() {
    refresh().then(function () { window.setTimeout(loop, POLL_MS); });
  }

  $("card-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var card = $("card").value.trim();
    if (card) { presentCard(card); }
  });

  loop();
  loadLibrary();

  /* The test library system of `bibbox demo --ils` (GET /sim/library;
   * present: false without one): its patrons and items; load by item via
   * POST /sim/library/load {"barcode": ...}. */
  function loadLibrary() {
    fetch("/sim/library", { cache: "no-store" }).then(function (r) {
      if (!r.ok) { return; }
      return r.json().then(function (listing) {
        if (listing.present) { renderLibrary(listing); }
      });
    }).catch(function () {});
  }

  function renderLibrary(listing) {
    $("library").hidden = false;
    var patrons = $("library-patrons");
    listing.patrons.forEach(function (p, i) {
      var row = el("tr");
      [p.name, p.card, p.pin, p.status].forEach(function (t) { row.appendChild(el("td", {}, t)); });
      var cell = el("td");
      cell.appendChild(button("Present card", "sim-library-present-" + i,
        function () { presentCard(p.card); }));
      row.appendChild(cell);
      patrons.appendChild(row);
    });
    var items = $("library-items");
    listing.items.forEach(function (item) {
      var row = el("tr");
      [item.barcode, item.title, item.hold || "-"].forEach(function (t) { row.appendChild(el("td", {}, t)); });
      var cell = el("td");
      if (item.hold) {
        cell.appendChild(button("Load", "sim-library-load-" + item.barcode, function () {
          post("/sim/library/load", { barcode: item.barcode }).then(function (r) {
            if (r) { log("Loading " + item.barcode + " into compartment " + r.compartment + ": open and close its door."); }
          });
        }));
      }
      row.appendChild(cell);
      items.appendChild(row);
    });
  }
})();

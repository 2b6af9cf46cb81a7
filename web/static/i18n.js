/* Kiosk texts: the runtime over the catalogues.
 *
 * The catalogues are web/static/i18n/<code>.json, one per language, embedded
 * by the server in <script type="application/json" id="catalogues"> as
 * {"order": [codes], "catalogues": {code: {key: text}}}.  A key
 * maps to a text with {placeholders}; a text that depends on a number has
 * plural variants key_one, key_few, key_many, key_other, ... chosen by
 * Intl.PluralRules with the parameter "count" (key_other, then key itself,
 * is the fallback).  Keys beginning with "_" describe the language: _name
 * (named in itself), _dir (ltr or rtl), _locale, _date.  A key missing in a
 * language falls back to Danish; tests/web/test_kiosk_catalogues.py fails
 * when one is missing.  Texts never contain markup: the kiosk writes them
 * with textContent.
 */
(function () {
  "use strict";

  var FALLBACK = "da";
  var PLURAL = /_(zero|one|two|few|many|other)$/;
  var source = document.getElementById("catalogues");
  var data = source ? JSON.parse(source.textContent) : { order: [], catalogues: {} };
  var catalogues = data.catalogues;
  var rules = {};

  function pluralCategory(lang, n) {
    try {
      if (!rules[lang]) { rules[lang] = new Intl.PluralRules(meta(lang, "_locale") || lang); }
      return rules[lang].select(n);
    } catch (e) {
      return n === 1 ? "one" : "other";
    }
  }

  function meta(lang, key) { return (catalogues[lang] || {})[key]; }

  function lookup(lang, key, params) {
    var table = catalogues[lang];
    if (!table) { return undefined; }
    if (params && typeof params.count === "number") {
      var variant = table[key + "_" + pluralCategory(lang, params.count)];
      if (variant !== undefined) { return variant; }
      if (table[key + "_other"] !== undefined) { return table[key + "_other"]; }
    }
    return table[key];
  }

  function has(lang, key) {
    return lookup(lang, key, { count: 2 }) !== undefined;
  }

  /* The text of ``key`` in ``lang`` with {name} replaced by params[name]. */
  function t(lang, key, params) {
    var value = lookup(lang, key, params);
    if (value === undefined) { value = lookup(FALLBACK, key, params); }
    if (value === undefined) { return key; }
    return value.replace(/\{(\w+)\}/g, function (all, name) {
      return params && params[name] !== undefined && params[name] !== null
        ? String(params[name]) : all;
    });
  }

  /* "2026-12-21" -> "21.12.2026" (a catalogue with _date dd.mm.yyyy) or the
   * language's long date.  Parsed by hand: no time zone can shift the day. */
  function formatDate(lang, iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    if (!m) { return String(iso); }
    if (meta(lang, "_date") === "dd.mm.yyyy") { return m[3] + "." + m[2] + "." + m[1]; }
    try {
      var day = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
      return new Intl.DateTimeFormat(meta(lang, "_locale") || lang,
        { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" }).format(day);
    } catch (e) {
      return m[0];
    }
  }

  window.BIBBOX_I18N = {
    catalogues: catalogues,
    languages: data.order,           // Danish, English, then the others
    t: t,
    has: has,
    dir: function (lang) { return meta(lang, "_dir") === "rtl" ? "rtl" : "ltr"; },
    formatDate: formatDate,
    pluralPattern: PLURAL
  };
})();

/* Kiosk texts, Danish and English.
 *
 * window.BIBBOX_I18N[lang][key] is a string, or a function of the view
 * (or of a number) that returns one.  Every key exists in both languages;
 * tests/test_kiosk_browser.py checks that.  Texts never contain markup: the
 * kiosk writes them with textContent.
 */
(function () {
  "use strict";

  function plural(n, one, many) { return n === 1 ? one : many; }

  var MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"];

  window.BIBBOX_I18N = {
    da: {
      switch_to: "English", switch_lang: "en",
      reader_offline: "Kortlæseren virker ikke lige nu. Kontakt biblioteket.",
      library_offline: "Bibliotekets system kan ikke nås lige nu.",
      connection_lost: "Ingen forbindelse til skabet. Prøver igen …",
      request_failed: "Det gik ikke. Prøv igen.",

      idle_title: "Scan dit sundhedskort eller lånerkort",
      idle_help: "Hold kortet op foran kortlæseren.",

      pin_title: "Indtast din pinkode",
      pin_help: "Tast de 4 cifre, og tryk OK.",
      pin_dots: function (n) { return n + " af 4 cifre indtastet"; },
      pin_erase: "Slet",
      pin_ok: "OK",
      wrong_pin: function (v) {
        return "Forkert pinkode. Du har " + v.tries_left + " forsøg tilbage.";
      },
      pin_format: "Pinkoden skal være 4 cifre.",

      code_title: "Indtast afhentningskoden",
      code_help: "Koden står i din sms eller e-mail om reserveringen. Tryk OK bagefter.",
      code_dots: function (n) { return n + " tegn indtastet"; },
      central_offline: "Vi kan ikke kontrollere pinkoden lige nu. Brug i stedet afhentningskoden fra din besked.",
      code_format: "Koden må kun indeholde tal og bogstaver.",
      wrong_code: function (v) {
        return "Forkert kode. Du har " + v.tries_left + " forsøg tilbage.";
      },

      verifying_title: "Et øjeblik …",
      verifying_help: "Vi kontrollerer dit kort.",

      opening_title: "Dine låger åbner",
      opening_help: "Tag dine materialer, og luk lågen bagefter.",
      door_queued: function (n) { return "Låge " + n + " åbner om lidt"; },
      door_unlocked: function (n) { return "Låge " + n + " er låst op – åbn lågen"; },
      door_open: function (n) { return "Låge " + n + " er åben"; },
      door_closed: function (n) { return "Låge " + n + " er lukket"; },
      door_jammed: function (n) { return "Låge " + n + " kunne ikke åbne. Kontakt biblioteket."; },
      door_unavailable: function (n) { return "Låge " + n + " kan ikke åbnes lige nu. Kontakt biblioteket."; },

      receipt_title: "Kvittering",
      receipt_help: "Du har lånt:",
      receipt_none: "Ingen materialer at vise.",
      receipt_close: "Husk at lukke lågen.",
      receipt_thanks: "Tak for besøget!",
      due: function (iso) { return "Afleveres senest " + formatDate(iso, "da"); },
      due_unknown: "Se afleveringsdatoen i din lånerkonto.",

      denied_title: {
        card_blocked: "Kortet er spærret",
        patron_blocked: "Du kan ikke låne lige nu",
        unknown_card: "Kortet kendes ikke",
        nothing_here: "Der er intet til dig i skabet",
        only_expired: "Afhentningsfristen er overskredet",
        service_unavailable: "Vi kan ikke kontrollere dit kort lige nu",
        compartment_unavailable: "Lågen kan ikke åbnes lige nu",
        other: "Det lykkedes ikke"
      },
      denied_help: {
        card_blocked: function (v) {
          var m = v.minutes_blocked || 15;
          return "For mange forkerte pinkoder. Prøv igen om " + m + " " +
            plural(m, "minut", "minutter") + ".";
        },
        patron_blocked: "Kontakt biblioteket for at høre hvorfor.",
        unknown_card: "Kontakt biblioteket, hvis du har fået besked om en reservering.",
        nothing_here: "Du får besked, når dine materialer er klar til afhentning.",
        only_expired: "Dine materialer er sendt tilbage til biblioteket. Kontakt biblioteket.",
        service_unavailable: "Prøv igen om lidt. Virker det stadig ikke, så kontakt biblioteket.",
        compartment_unavailable: "Kontakt biblioteket.",
        other: "Kontakt biblioteket."
      },

      notice: {
        busy: "Vent et øjeblik – en låge er ved at åbne.",
        busy_other_card: "Et andet kort er i gang. Tryk Afbryd for at starte forfra.",
        card_unreadable: "Kortet kunne ikke læses. Prøv igen."
      },

      countdown: function (s) { return "Skærmen nulstilles om " + s + " s"; },
      countdown_soon: function (s) { return "Kun " + s + " sekunder tilbage. Tryk Mere tid for at fortsætte."; },
      extend: "Mere tid",
      cancel: "Afbryd",
      done: "Færdig"
    },

    en: {
      switch_to: "Dansk", switch_lang: "da",
      reader_offline: "The card reader is not working right now. Please contact the library.",
      library_offline: "The library system cannot be reached right now.",
      connection_lost: "No connection to the locker. Trying again …",
      request_failed: "That did not work. Please try again.",

      idle_title: "Scan your health card or library card",
      idle_help: "Hold your card up to the card reader.",

      pin_title: "Enter your PIN",
      pin_help: "Type the 4 digits and press OK.",
      pin_dots: function (n) { return n + " of 4 digits entered"; },
      pin_erase: "Erase",
      pin_ok: "OK",
      wrong_pin: function (v) {
        return "Wrong PIN. You have " + v.tries_left + " " +
          plural(v.tries_left, "try", "tries") + " left.";
      },
      pin_format: "The PIN must be 4 digits.",

      code_title: "Enter your pickup code",
      code_help: "The code is in the text message or e-mail about your reservation. Then press OK.",
      code_dots: function (n) { return n + " " + plural(n, "character", "characters") + " entered"; },
      central_offline: "We cannot check your PIN right now. Use the pickup code from your message instead.",
      code_format: "The code may only contain digits and letters.",
      wrong_code: function (v) {
        return "Wrong code. You have " + v.tries_left + " " +
          plural(v.tries_left, "try", "tries") + " left.";
      },

      verifying_title: "One moment …",
      verifying_help: "We are checking your card.",

      opening_title: "Your doors are opening",
      opening_help: "Take your items, then close the door.",
      door_queued: function (n) { return "Door " + n + " opens in a moment"; },
      door_unlocked: function (n) { return "Door " + n + " is unlocked – open the door"; },
      door_open: function (n) { return "Door " + n + " is open"; },
      door_closed: function (n) { return "Door " + n + " is closed"; },
      door_jammed: function (n) { return "Door " + n + " did not open. Please contact the library."; },
      door_unavailable: function (n) { return "Door " + n + " cannot be opened right now. Please contact the library."; },

      receipt_title: "Receipt",
      receipt_help: "You have borrowed:",
      receipt_none: "No items to show.",
      receipt_close: "Remember to close the door.",
      receipt_thanks: "Thank you for your visit!",
      due: function (iso) { return "Due back by " + formatDate(iso, "en"); },
      due_unknown: "See the due date in your library account.",

      denied_title: {
        card_blocked: "This card is blocked",
        patron_blocked: "You cannot borrow right now",
        unknown_card: "Card not recognised",
        nothing_here: "There is nothing for you in the locker",
        only_expired: "The pickup deadline has passed",
        service_unavailable: "We cannot check your card right now",
        compartment_unavailable: "The door cannot be opened right now",
        other: "That did not work"
      },
      denied_help: {
        card_blocked: function (v) {
          var m = v.minutes_blocked || 15;
          return "Too many wrong PINs. Try again in " + m + " " +
            plural(m, "minute", "minutes") + ".";
        },
        patron_blocked: "Please contact the library to find out why.",
        unknown_card: "Please contact the library if you were told a reservation is ready.",
        nothing_here: "You will get a message when your items are ready to collect.",
        only_expired: "Your items have gone back to the library. Please contact the library.",
        service_unavailable: "Please try again in a moment. If it still fails, contact the library.",
        compartment_unavailable: "Please contact the library.",
        other: "Please contact the library."
      },

      notice: {
        busy: "Please wait – a door is opening.",
        busy_other_card: "Another card is in use. Press Cancel to start again.",
        card_unreadable: "The card could not be read. Please try again."
      },

      countdown: function (s) { return "The screen resets in " + s + " s"; },
      countdown_soon: function (s) { return "Only " + s + " seconds left. Press More time to continue."; },
      extend: "More time",
      cancel: "Cancel",
      done: "Done"
    }
  };

  /* "2026-12-21" -> "21.12.2026" (da) or "21 December 2026" (en).
   * Parsed by hand: no time zone can shift the day. */
  function formatDate(iso, lang) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    if (!m) { return String(iso); }
    if (lang === "da") { return m[3] + "." + m[2] + "." + m[1]; }
    return parseInt(m[3], 10) + " " + MONTHS_EN[parseInt(m[2], 10) - 1] + " " + m[1];
  }
})();

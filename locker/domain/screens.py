"""The kiosk's screens: the codes the kiosk view names and the page
translates (``web/static/kiosk.js``).  Shared by the card path
(:mod:`bibbox.locker.domain.sessions`) and the pickup-number path
(:mod:`bibbox.locker.domain.pickup_numbers`)."""

SCREEN_IDLE, SCREEN_PIN, SCREEN_VERIFYING = "idle", "pin", "verifying"
SCREEN_OPENING, SCREEN_RECEIPT, SCREEN_DENIED = "opening", "receipt", "denied"
SCREEN_CODE = "code"       # central is offline: the pickup code from the patron's message
SCREEN_NUMBER = "number"   # pickup without the card: the pickup number, then the PIN
DENIED_SCREEN_S = 12.0     # how long a denial stays on screen

"""The kiosk on the locker's own touch screen (Raspberry Pi OS Bookworm).

``bibbox firmware kiosk-display`` (run by ``firmware/install.sh``) writes,
under a root directory (``/`` on the Pi, a scratch folder in tests):

- ``/opt/bibbox/bin/bibbox-kiosk``: waits until the daemon serves the kiosk
  on loopback, then runs Chromium in kiosk mode on it, again whenever it
  exits, each time with a fresh profile in the runtime directory (so no
  "restore pages" bubble after a crash);
- ``/etc/chromium/policies/managed/bibbox-kiosk.json``: no password manager,
  no translation, no sign-in, no first-run or default-browser prompts;
- the desktop user's compositor configuration, inside marked blocks or by
  key, so a second run changes nothing and the user's own lines stay:
  labwc (Bookworm's default): ``~/.config/labwc/autostart`` (the launcher,
  the rotation with ``wlr-randr``; swayidle lines that would blank the
  screen are disabled) and ``~/.config/labwc/rc.xml`` (touch panel mapped
  onto the screen's output); wayfire (older Bookworm images):
  ``~/.config/wayfire.ini`` (autostart, no idle blanking, output
  transform, touch mapping).

Swipe navigation and pinch zoom are off (Chromium flags, and the kiosk
page's own CSS); the page hides the cursor when it is opened with
``?kiosk=1``, as the launcher does.  Rotation, output and touch panel come
from the configuration's ``[display]`` section.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

LAUNCHER = "/opt/bibbox/bin/bibbox-kiosk"
POLICY_FILE = "/etc/chromium/policies/managed/bibbox-kiosk.json"
BEGIN_MARK = "# >>> bibbox kiosk (managed by bibbox firmware kiosk-display) >>>"
END_MARK = "# <<< bibbox kiosk <<<"
TRANSFORMS = {0: "normal", 90: "90", 180: "180", 270: "270"}

# Every flag, with why; the one list (the install test checks for each).
CHROMIUM_FLAGS = (
    "--kiosk",                                   # full screen, no way out by keyboard
    "--noerrdialogs",
    "--disable-infobars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-session-crashed-bubble",          # no "restore pages?" after a crash
    "--hide-crash-restore-bubble",
    "--disable-translate",
    "--disable-features=Translate,TranslateUI,OverscrollHistoryNavigation,"
    "TouchpadOverscrollHistoryNavigation",
    "--overscroll-history-navigation=0",         # no swipe back or forward
    "--disable-pinch",                           # no pinch zoom
    "--password-store=basic",                    # no keyring prompt
    "--disable-background-networking",           # an outdoor box talks to nobody else
    "--disable-component-update",
    "--check-for-update-interval=31536000",
    "--autoplay-policy=no-user-gesture-required",  # the door-open tone
    "--ozone-platform=wayland",
)

POLICY = {
    "PasswordManagerEnabled": False,
    "TranslateEnabled": False,
    "BrowserSignin": 0,
    "SyncDisabled": True,
    "DefaultBrowserSettingEnabled": False,
    "PromotionalTabsEnabled": False,
    "MetricsReportingEnabled": False,
    "AutofillAddressEnabled": False,
    "AutofillCreditCardEnabled": False,
    "BookmarkBarEnabled": False,
    "DeveloperToolsAvailability": 2,
}


@dataclass
class Written:
    """What a run wrote (paths relative to the root) and notes for the operator."""
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def kiosk_url(cfg) -> str:
    return f"http://127.0.0.1:{cfg.web.kiosk_port}/?kiosk=1"


def render_launcher(cfg) -> str:
    port = cfg.web.kiosk_port
    flags = " \\\n        ".join(CHROMIUM_FLAGS)
    return f"""#!/bin/sh
# Bibbox: the patron's kiosk on the locker's screen.  Written by
# 'bibbox firmware kiosk-display' (firmware/install.sh); started by the
# desktop session's autostart.  Waits for the daemon, then runs Chromium in
# kiosk mode, again whenever it exits.
URL="{kiosk_url(cfg)}"
STATUS="http://127.0.0.1:{port}/api/status"
BROWSER=$(command -v chromium-browser || command -v chromium)
PROFILE="${{XDG_RUNTIME_DIR:-/tmp}}/bibbox-kiosk"

serving() {{
    python3 - "$STATUS" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass                      # it answers: it serves
except Exception:
    sys.exit(1)
PY
}}

while true; do
    until serving; do sleep 2; done
    rm -rf "$PROFILE"         # a fresh profile: no restore bubble, no history
    "$BROWSER" \\
        {flags} \\
        --user-data-dir="$PROFILE" \\
        "$URL"
    sleep 2                   # it died or was closed: start it again
done
"""


def render_labwc_block(cfg) -> str:
    lines = [BEGIN_MARK]
    if cfg.display.rotation and cfg.display.output:
        lines.append(f"wlr-randr --output {cfg.display.output} "
                     f"--transform {TRANSFORMS[cfg.display.rotation]} &")
    lines += [f"{LAUNCHER} &", END_MARK]
    return "\n".join(lines) + "\n"


def _replace_block(text: str, block: str) -> str:
    pattern = re.compile(re.escape(BEGIN_MARK) + r".*?" + re.escape(END_MARK) + r"\n?", re.S)
    text = pattern.sub("", text)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def _no_blanking(text: str) -> str:
    """Disable lines that start swayidle (it blanks the screen when idle)."""
    return re.sub(r"^(?!#)(.*\bswayidle\b.*)$", r"# disabled by bibbox (kiosk never blanks): \1",
                  text, flags=re.M)


def _touch_rc_xml(text: str, device: str, output: str) -> str:
    entry = f'  <touch deviceName="{device}" mapToOutput="{output}" />'
    text = re.sub(r"^\s*<touch deviceName=\"" + re.escape(device) + r"\"[^\n]*\n", "", text,
                  flags=re.M)
    if "</labwc_config>" not in text:
        return f"<?xml version=\"1.0\"?>\n<labwc_config>\n{entry}\n</labwc_config>\n"
    return text.replace("</labwc_config>", entry + "\n</labwc_config>", 1)


def _ini_set(text: str, section: str, key: str, value: str) -> str:
    """Set ``key = value`` in ``[section]`` of an INI text, keeping the rest."""
    lines = text.splitlines()
    header = f"[{section}]"
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        if lines and lines[-1].strip():
            lines.append("")
        return "\n".join(lines + [header, f"{key} = {value}"]) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
               len(lines))
    for i in range(start + 1, end):
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def wayfire_settings(cfg) -> list[tuple[str, str, str]]:
    settings = [("autostart", "bibbox_kiosk", LAUNCHER),
                ("autostart", "screensaver", "false"), ("autostart", "dpms", "false"),
                ("idle", "screensaver_timeout", "-1"), ("idle", "dpms_timeout", "-1")]
    if cfg.display.output:
        settings.append((f"output:{cfg.display.output}", "transform",
                         TRANSFORMS[cfg.display.rotation]))
        if cfg.display.touch_device:
            settings.append((f"input-device:{cfg.display.touch_device}", "output",
                             cfg.display.output))
    return settings


def _write(root: str, path: str, text: str, mode: int, written: Written):
    target = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    old = None
    if os.path.exists(target):
        with open(target, encoding="utf-8") as fh:
            old = fh.read()
    if old != text:
        with open(target + ".bibbox-tmp", "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(target + ".bibbox-tmp", target)
    os.chmod(target, mode)
    written.files.append(path)


def _read(root: str, path: str) -> str:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class Target:
    """Where the kiosk display goes: the compositor, the desktop user, their home."""
    compositor: str
    user: str
    home: str


def find_target(cfg, root: str) -> Target | str:
    """The compositor and the desktop user on the system under ``root``, from
    ``[display]`` or detected (labwc before wayfire; the first user, uid
    1000); or a reason why there is none."""
    compositor = cfg.display.compositor
    if compositor == "none":
        return "display.compositor is none"
    if compositor == "auto":
        for name in ("labwc", "wayfire"):
            if os.path.exists(os.path.join(root, "usr/bin", name)):
                compositor = name
                break
        else:
            return "no desktop compositor (labwc or wayfire) is installed"
    users = {}
    for line in _read(root, "/etc/passwd").splitlines():
        parts = line.split(":")
        if len(parts) >= 7:
            users[parts[0]] = (int(parts[2]) if parts[2].isdigit() else -1, parts[5])
    if cfg.display.user:
        if cfg.display.user not in users:
            return f"display.user {cfg.display.user!r} does not exist"
        user = cfg.display.user
    else:
        first = sorted((uid, name) for name, (uid, _) in users.items() if uid >= 1000
                       and uid < 60000)
        if not first:
            return "no desktop user (uid 1000 or more); set display.user"
        user = first[0][1]
    return Target(compositor, user, users[user][1])


def install(cfg, *, root: str, home: str, compositor: str) -> Written:
    """Write the kiosk display's files under ``root`` for the desktop user
    whose home is ``home`` (a path on the target), for ``compositor``
    (labwc or wayfire).  Idempotent."""
    written = Written()
    _write(root, LAUNCHER, render_launcher(cfg), 0o755, written)
    _write(root, POLICY_FILE, json.dumps(POLICY, indent=2, sort_keys=True) + "\n", 0o644,
           written)
    if compositor == "labwc":
        autostart = f"{home}/.config/labwc/autostart"
        text = _no_blanking(_read(root, autostart))
        _write(root, autostart, _replace_block(text, render_labwc_block(cfg)), 0o644, written)
        if cfg.display.touch_device:
            if not cfg.display.output:
                written.notes.append("display.touch_device needs display.output to map onto")
            else:
                rc = f"{home}/.config/labwc/rc.xml"
                _write(root, rc, _touch_rc_xml(_read(root, rc), cfg.display.touch_device,
                                               cfg.display.output), 0o644, written)
        if cfg.display.rotation and not cfg.display.output:
            written.notes.append("display.rotation needs display.output (see wlr-randr)")
    elif compositor == "wayfire":
        ini = f"{home}/.config/wayfire.ini"
        text = _read(root, ini)
        for section, key, value in wayfire_settings(cfg):
            text = _ini_set(text, section, key, value)
        _write(root, ini, text, 0o644, written)
    else:
        raise ValueError(f"unknown compositor {compositor!r}")
    return written


def uninstall(*, root: str, home: str) -> list[str]:
    """Remove what :func:`install` wrote; the user's own lines stay."""
    removed = []
    for path in (LAUNCHER, POLICY_FILE):
        target = os.path.join(root, path.lstrip("/"))
        if os.path.exists(target):
            os.remove(target)
            removed.append(path)
    autostart = f"{home}/.config/labwc/autostart"
    text = _read(root, autostart)
    if BEGIN_MARK in text:
        _write(root, autostart, _replace_block(text, ""), 0o644, Written())
        removed.append(autostart)
    ini = f"{home}/.config/wayfire.ini"
    text = _read(root, ini)
    if LAUNCHER in text:
        text = re.sub(rf"^bibbox_kiosk = {re.escape(LAUNCHER)}\n", "", text, flags=re.M)
        _write(root, ini, text, 0o644, Written())
        removed.append(ini)
    return removed

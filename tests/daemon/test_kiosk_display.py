"""The kiosk on the locker's own screen: install.sh in a scratch root sets up
Chromium in kiosk mode for the desktop user, the autostart, no blanking, the
browser flags and policies, rotation and touch from the configuration."""

from __future__ import annotations

import json
import os
import stat

from bibbox.daemon import kiosk_display
from tests.daemon.test_firmware import install, scratch_root, snapshot

USER = "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"


def desktop_root(tmp_path, compositor="labwc", autostart=None):
    root = scratch_root(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / compositor).write_text("#!/bin/sh\n")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" + USER)
    if autostart is not None:
        path = root / "home" / "pi" / ".config" / "labwc" / "autostart"
        path.parent.mkdir(parents=True)
        path.write_text(autostart)
    return root


def set_display(root, text):
    conf = root / "etc" / "bibbox" / "bibbox.toml"
    conf.write_text(conf.read_text() + "\n[display]\n" + text)


def test_labwc_kiosk_autostarts_never_blanks_and_survives_a_second_run(tmp_path):
    root = desktop_root(tmp_path, autostart="swayidle -w timeout 600 'wlopm --off \\*' &\n"
                                            "pcmanfm --desktop &\n")
    out = install(root)
    assert "kiosk display: Chromium in kiosk mode for pi on labwc" in out
    assert "(dry run) raspi-config nonint do_boot_behaviour B4" in out     # autologin
    assert "(dry run) raspi-config nonint do_blanking 1" in out
    assert "(dry run) chown pi:pi" in out
    autostart = (root / "home/pi/.config/labwc/autostart").read_text()
    assert "pcmanfm --desktop &" in autostart                               # theirs stays
    assert "# disabled by bibbox (kiosk never blanks): swayidle" in autostart
    assert not any(line.startswith("swayidle") for line in autostart.splitlines())
    assert autostart.count(kiosk_display.LAUNCHER + " &") == 1
    launcher = root / kiosk_display.LAUNCHER.lstrip("/")
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    script = launcher.read_text()
    for flag in ("--kiosk", "--no-first-run", "--disable-translate", "--disable-pinch",
                 "--overscroll-history-navigation=0", "--password-store=basic",
                 "--disable-session-crashed-bubble", "--noerrdialogs"):
        assert flag in script, flag
    assert 'URL="http://127.0.0.1:8080/?kiosk=1"' in script
    assert "until serving; do sleep 2; done" in script and "while true; do" in script
    policy = json.loads((root / kiosk_display.POLICY_FILE.lstrip("/")).read_text())
    assert policy["PasswordManagerEnabled"] is False and policy["TranslateEnabled"] is False
    before = snapshot(root)
    install(root)                                                            # idempotent
    after = snapshot(root)
    assert {k for k in before if before[k] != after.get(k)} == set()


def test_rotation_and_touch_come_from_the_configuration(tmp_path):
    root = desktop_root(tmp_path)
    install(root)
    set_display(root, 'output = "DSI-1"\nrotation = 90\n'
                      'touch_device = "10-0038 generic ft5x06 (79)"\n')
    install(root)
    autostart = (root / "home/pi/.config/labwc/autostart").read_text()
    assert "wlr-randr --output DSI-1 --transform 90 &" in autostart
    assert autostart.count(kiosk_display.BEGIN_MARK) == 1
    rc = (root / "home/pi/.config/labwc/rc.xml").read_text()
    assert '<touch deviceName="10-0038 generic ft5x06 (79)" mapToOutput="DSI-1" />' in rc


def test_wayfire_on_older_images(tmp_path):
    root = desktop_root(tmp_path, compositor="wayfire")
    ini = root / "home/pi/.config/wayfire.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[core]\nplugins = autostart\n\n[idle]\ndpms_timeout = 600\n")
    install(root)
    set_display(root, 'output = "HDMI-A-1"\nrotation = 270\n')
    install(root)
    text = ini.read_text()
    assert "plugins = autostart" in text
    assert "dpms_timeout = -1" in text and "dpms_timeout = 600" not in text
    assert f"bibbox_kiosk = {kiosk_display.LAUNCHER}" in text
    assert "[output:HDMI-A-1]\ntransform = 270" in text
    assert text.count("[idle]") == 1


def test_no_desktop_no_kiosk_and_uninstall_removes_it(tmp_path):
    plain = scratch_root(tmp_path / "plain", "Raspberry Pi 4 Model B Rev 1.4")
    assert "kiosk display: not set up (no desktop compositor" in install(plain)
    root = desktop_root(tmp_path / "desk", autostart="pcmanfm --desktop &\n")
    install(root)
    install(root, "--uninstall")
    assert not (root / kiosk_display.LAUNCHER.lstrip("/")).exists()
    assert (root / "home/pi/.config/labwc/autostart").read_text() == "pcmanfm --desktop &\n"
    assert not os.path.exists(root / kiosk_display.POLICY_FILE.lstrip("/"))

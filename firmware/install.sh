#!/usr/bin/env bash
# Install Bibbox on a Raspberry Pi (Raspberry Pi OS Bookworm, Pi 3, 4 or 5).
#
#   sudo firmware/install.sh [--pin-factory lgpio|rpigpio] [--reader-id VVVV:PPPP]
#   sudo firmware/install.sh --uninstall [--purge]
#
# Safe to run again: it keeps an existing configuration, site key and
# database, refreshes the program, the unit, the udev rule and the boot
# settings (re-run it after editing /etc/bibbox/bibbox.toml so config.txt
# matches the relay pins), and restarts the service if it was configured.
#
# What it does (paths below):
#   apt packages   python3-venv, python3-dev, gcc (+ swig, liblgpio-dev for lgpio)
#   user           bibbox (system user, groups gpio and dialout)
#   program        /opt/bibbox/venv  (pip install "bibbox[lgpio]" or "bibbox[rpigpio]")
#   configuration  /etc/bibbox/bibbox.toml from config/locker-12-gpio.toml (root:bibbox 0640)
#   site key       /etc/bibbox/site-key (bibbox keygen; root 0600; reaches the
#                  daemon as a systemd credential)
#   udev rule      /etc/udev/rules.d/99-bibbox-reader.rules (/dev/bibbox-reader)
#   systemd        /etc/systemd/system/bibbox.service, enabled;
#                  /etc/systemd/system.conf.d/bibbox-watchdog.conf (RuntimeWatchdogSec)
#   boot settings  a marked block in /boot/firmware/config.txt from
#                  'bibbox firmware config-txt'; the serial console is taken
#                  off cmdline.txt when the reader uses the GPIO UART
#   data           /var/lib/bibbox (made by systemd: StateDirectory=)
#   kiosk display  Chromium in kiosk mode on the touch screen, for the desktop
#                  user (autologin): /opt/bibbox/bin/bibbox-kiosk, Chromium
#                  policies, labwc's autostart and rc.xml or wayfire.ini
#                  ('bibbox firmware kiosk-display'; [display] in the config:
#                  rotation, output, touch panel); the screen never blanks
#
# Pin factory: a Pi 5 (/proc/device-tree/model says "Raspberry Pi 5", "Pi 500"
# or "Compute Module 5") gets lgpio, an older Pi rpigpio (RPi.GPIO) -- unless
# its kernel is 6.6 or newer, where RPi.GPIO's edge detection (the door
# sensors' events) no longer works, so it gets lgpio too.  --pin-factory
# overrides it.  The choice goes into the config's hardware.pin_factory when
# the config is first written, and into the pip extra.
#
# --root DIR        write every file under DIR instead of /, and only print the
#                   system commands (apt-get, useradd, pip, systemctl, udevadm,
#                   chown) instead of running them.  For tests and for a look.
# BIBBOX_INSTALL_DRY=1  the same dry run of the commands, on the real paths.
# --no-display      do not set up the kiosk on the locker's screen.
# --uninstall       remove the program, the unit, the udev rule, the watchdog
#                   setting, the kiosk display and the boot block; keep /etc/bibbox and
#                   /var/lib/bibbox (the holds, the key) unless --purge.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=""
DRY=${BIBBOX_INSTALL_DRY:-0}
ACTION=install
PURGE=0
FACTORY=""
READER_ID=""
EXAMPLE="$SRC/config/locker-12-gpio.toml"
BOOT_CONFIG=1
DISPLAY_SETUP=1
PYTHON=${BIBBOX_PYTHON:-python3}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; DRY=1; shift 2 ;;
        --root=*) ROOT=${1#--root=}; DRY=1; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        --pin-factory) [ $# -ge 2 ] || die "--pin-factory needs lgpio or rpigpio"; FACTORY=$2; shift 2 ;;
        --reader-id) [ $# -ge 2 ] || die "--reader-id needs VVVV:PPPP"; READER_ID=$2; shift 2 ;;
        --config-example) [ $# -ge 2 ] || die "--config-example needs a file"; EXAMPLE=$2; shift 2 ;;
        --no-boot-config) BOOT_CONFIG=0; shift ;;
        --no-display) DISPLAY_SETUP=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
fi
case "$FACTORY" in ""|lgpio|rpigpio) ;; *) die "--pin-factory must be lgpio or rpigpio" ;; esac
if [ -n "$READER_ID" ] && ! [[ "$READER_ID" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]]; then
    die "--reader-id must look like 1a86:7523 (idVendor:idProduct, see lsusb)"
fi
if [ "$DRY" != 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "run it as root (sudo), or try it with --root DIR"
fi

PREFIX=/opt/bibbox
VENV=$PREFIX/venv
ETC=/etc/bibbox
CONF=$ETC/bibbox.toml
KEY=$ETC/site-key
UNIT=/etc/systemd/system/bibbox.service
UDEV=/etc/udev/rules.d/99-bibbox-reader.rules
WATCHDOG=/etc/systemd/system.conf.d/bibbox-watchdog.conf
STATE=/var/lib/bibbox
LINK=/usr/local/bin/bibbox
BEGIN_MARK='# >>> bibbox: managed by bibbox (firmware config-txt) >>>'
END_MARK='# <<< bibbox <<<'
NEXT=()

say() { echo "==> $*"; }
note() { NEXT+=("$*"); }

# run CMD...: run a system command, or only print it in a dry run.
run() {
    if [ "$DRY" = 1 ]; then
        echo "    (dry run) $*"
    else
        "$@"
    fi
}

# bibbox ARGS...: the installed command, or the source tree's in a dry run.
bibbox() {
    if [ "$DRY" = 1 ]; then
        "$PYTHON" -m bibbox.daemon.cli "$@"   # the dry run needs bibbox importable by $PYTHON
    else
        "$VENV/bin/bibbox" "$@"
    fi
}

boot_dir() {
    if [ -d "$ROOT/boot/firmware" ] || [ ! -f "$ROOT/boot/config.txt" ]; then
        echo "/boot/firmware"
    else
        echo "/boot"        # Bullseye and older
    fi
}

# remove_block FILE: drop the lines between the bibbox markers (inclusive).
remove_block() {
    local file=$1
    [ -f "$file" ] || return 0
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
        $0 == b { skip = 1; next }
        $0 == e { skip = 0; next }
        !skip { print }' "$file" > "$file.bibbox-tmp"
    cat "$file.bibbox-tmp" > "$file"
    rm -f "$file.bibbox-tmp"
}

# kernel_at_least MAJOR MINOR: the (target's) kernel is that version or newer.
kernel_at_least() {
    local release=""
    if [ -r "$ROOT/proc/sys/kernel/osrelease" ]; then
        release=$(cat "$ROOT/proc/sys/kernel/osrelease")
    elif [ -z "$ROOT" ]; then
        release=$(uname -r)
    fi
    [[ "$release" =~ ^([0-9]+)\.([0-9]+) ]] || return 1
    local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    [ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "$minor" -ge "$2" ]; }
}

detect_factory() {
    local model=""
    if [ -r "$ROOT/proc/device-tree/model" ]; then
        model=$(tr -d '\0' < "$ROOT/proc/device-tree/model")
    fi
    if [ -n "$FACTORY" ]; then
        say "pin factory: $FACTORY (chosen with --pin-factory; board: ${model:-unknown})"
    elif [[ "$model" =~ Raspberry\ Pi\ (5|500)|Compute\ Module\ 5 ]]; then
        FACTORY=lgpio
        say "pin factory: lgpio ($model: the Pi 5 has no RPi.GPIO support)"
    elif kernel_at_least 6 6; then
        # RPi.GPIO's edge detection (door sensor events) fails on kernels from
        # 6.6 on ("Failed to add edge detection": the GPIO chip's base number
        # moved); lgpio works on every Pi.  --pin-factory rpigpio overrides.
        FACTORY=lgpio
        say "pin factory: lgpio (${model:-board unknown} with kernel 6.6 or newer, where RPi.GPIO cannot report door changes)"
    else
        FACTORY=rpigpio
        say "pin factory: rpigpio (${model:-board unknown}: RPi.GPIO serves the Pi 1-4)"
    fi
}

install_packages() {
    local packages=(python3-venv python3-pip python3-dev gcc)
    [ "$FACTORY" = lgpio ] && packages+=(swig liblgpio-dev)
    # the kiosk on the touch screen: Chromium (Raspberry Pi OS calls it
    # chromium-browser) and wlr-randr for the rotation
    [ "$DISPLAY_SETUP" = 1 ] && packages+=(chromium-browser wlr-randr)
    say "Debian packages: ${packages[*]}"
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
}

create_user() {
    local groups=()
    for g in gpio dialout; do
        if getent group "$g" >/dev/null 2>&1; then groups+=("$g"); fi
    done
    if getent passwd bibbox >/dev/null 2>&1; then
        say "user bibbox exists"
    else
        say "user bibbox (system user, no login)"
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "Bibbox locker daemon" bibbox
    fi
    if [ ${#groups[@]} -gt 0 ]; then
        local list
        list=$(IFS=,; echo "${groups[*]}")
        run usermod --append --groups "$list" bibbox
    fi
}

install_program() {
    say "program: $VENV (bibbox[$FACTORY])"
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        run "$PYTHON" -m venv "$ROOT$VENV"
    fi
    run "$ROOT$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    run "$ROOT$VENV/bin/pip" install --quiet --disable-pip-version-check "${SRC}[${FACTORY}]"
    install -d -m 0755 "$ROOT$PREFIX/firmware" "$ROOT$(dirname "$LINK")"
    install -m 0644 "$SRC/firmware/README.md" "$ROOT$PREFIX/firmware/README.md"
    ln -sfn "$VENV/bin/bibbox" "$ROOT$LINK"
}

install_config() {
    if [ -f "$ROOT$CONF" ]; then
        say "configuration: kept $CONF"
        CONFIG_EXISTED=1
    else
        say "configuration: $CONF from $(basename "$EXAMPLE") (edit it: pins, locker id, reader)"
        install -d -m 0750 "$ROOT$ETC"
        sed -e "s|^pin_factory *=.*|pin_factory = \"$FACTORY\"        # chosen by install.sh|" \
            -e "s|^state_dir *=.*|state_dir = \"$STATE\"|" \
            -e "s|^site_key_file *=.*|site_key_file = \"$KEY\"|" \
            "$EXAMPLE" > "$ROOT$CONF.tmp"
        chmod 0640 "$ROOT$CONF.tmp"
        mv "$ROOT$CONF.tmp" "$ROOT$CONF"
        CONFIG_EXISTED=0
        note "edit $CONF: locker id and name, every compartment's relay_pin and door_pin, the reader"
    fi
    chmod 0750 "$ROOT$ETC"
    run chown root:bibbox "$ROOT$ETC" "$ROOT$CONF"
    if [ -f "$ROOT$KEY" ]; then
        say "site key: kept $KEY"
    else
        say "site key: $KEY (new; back it up: without it the stored patron hashes are useless)"
        bibbox keygen "$ROOT$KEY" >/dev/null
    fi
    chmod 0600 "$ROOT$KEY"
    run chown root:root "$ROOT$KEY"
    # systemd makes it too (StateDirectory=); made here so that selftest can
    # run as bibbox before the first start.
    install -d -m 0750 "$ROOT$STATE"
    run chown bibbox:bibbox "$ROOT$STATE"
}

install_udev() {
    local active=""
    if [ -f "$ROOT$UDEV" ]; then
        active=$(grep -E '^SUBSYSTEM==' "$ROOT$UDEV" || true)
    fi
    if [ -n "$READER_ID" ]; then
        local vendor=${READER_ID%%:*} product=${READER_ID##*:}
        active="SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"${vendor,,}\", ATTRS{idProduct}==\"${product,,}\", SYMLINK+=\"bibbox-reader\", GROUP=\"dialout\", MODE=\"0660\""
    fi
    install -d -m 0755 "$(dirname "$ROOT$UDEV")"
    install -m 0644 "$SRC/firmware/99-bibbox-reader.rules" "$ROOT$UDEV"
    if [ -n "$active" ]; then
        printf '%s\n' "$active" >> "$ROOT$UDEV"
        say "udev rule: $UDEV (/dev/bibbox-reader for ${READER_ID:-the reader already set up})"
    else
        say "udev rule: $UDEV (no reader set up yet)"
        note "give the USB reader its stable name: sudo $SRC/firmware/install.sh --reader-id VVVV:PPPP (IDs from lsusb; see $UDEV)"
    fi
    run udevadm control --reload
    run udevadm trigger --subsystem-match=tty
}

install_systemd() {
    say "systemd unit: $UNIT; hardware watchdog: $WATCHDOG"
    install -d -m 0755 "$(dirname "$ROOT$UNIT")" "$(dirname "$ROOT$WATCHDOG")"
    install -m 0644 "$SRC/firmware/bibbox.service" "$ROOT$UNIT"
    cat > "$ROOT$WATCHDOG.tmp" <<'EOF'
# Bibbox (install.sh): systemd pets the SoC watchdog (dtparam=watchdog=on in
# config.txt); if the kernel or systemd hangs, the Pi reboots.  The Pi's
# watchdog cannot count longer than about 15 s.  Takes effect at the next boot.
[Manager]
RuntimeWatchdogSec=15s
RebootWatchdogSec=2min
EOF
    mv "$ROOT$WATCHDOG.tmp" "$ROOT$WATCHDOG"
    chmod 0644 "$ROOT$WATCHDOG"
    run systemctl daemon-reload
    run systemctl enable bibbox.service
}

install_boot_config() {
    [ "$BOOT_CONFIG" = 1 ] || { say "boot settings: skipped (--no-boot-config)"; return 0; }
    local dir block config cmdline
    dir=$(boot_dir)
    config="$ROOT$dir/config.txt"
    cmdline="$ROOT$dir/cmdline.txt"
    if ! block=$(bibbox firmware config-txt --config "$ROOT$CONF" 2>"$ROOT$ETC/.config-txt.err"); then
        say "boot settings: NOT changed; the configuration was refused:"
        sed 's/^/    /' "$ROOT$ETC/.config-txt.err"
        rm -f "$ROOT$ETC/.config-txt.err"
        note "fix the pins in $CONF, then run install.sh again for the boot settings"
        BOOT_OK=0
        return 0
    fi
    if [ -s "$ROOT$ETC/.config-txt.err" ]; then
        sed 's/^/    /' "$ROOT$ETC/.config-txt.err"
        note "read the WARNING lines in $dir/config.txt (relay pins and their boot pulls)"
    fi
    rm -f "$ROOT$ETC/.config-txt.err"
    install -d -m 0755 "$ROOT$dir"
    touch "$config"
    remove_block "$config"
    printf '%s\n' "$block" >> "$config"
    say "boot settings: $dir/config.txt (relay pins held off from power-on, watchdog)"
    if grep -q '^enable_uart=1' <<<"$block" && [ -f "$cmdline" ] \
            && grep -Eq 'console=(serial0|ttyAMA0|ttyS0),[0-9]+' "$cmdline"; then
        [ -f "$cmdline.bibbox-orig" ] || cp -p "$cmdline" "$cmdline.bibbox-orig"
        sed -i -E 's/(^| )console=(serial0|ttyAMA0|ttyS0),[0-9]+( |$)/\1/g' "$cmdline"
        say "serial console taken off the reader's UART ($dir/cmdline.txt; backup .bibbox-orig)"
    fi
    note "reboot once so the boot settings apply: sudo reboot"
}

install_display() {
    [ "$DISPLAY_SETUP" = 1 ] || { say "kiosk display: skipped (--no-display)"; return 0; }
    local out user home compositor
    if ! out=$(bibbox firmware kiosk-display --config "$ROOT$CONF" --root "$ROOT/" 2>&1); then
        say "kiosk display: not set up (${out#no kiosk display: })"
        note "a screen for patrons: install Raspberry Pi OS with desktop, then run install.sh again"
        return 0
    fi
    read -r _ user home compositor <<<"$(head -n 1 <<<"$out")"
    say "kiosk display: Chromium in kiosk mode for $user on $compositor (never blanks)"
    while read -r word path; do
        case "$word" in
            wrote) case "$path" in "$home"/*) run chown "$user:$user" "$ROOT$path" ;; esac ;;
            note) note "kiosk display: $path" ;;
        esac
    done <<<"$(tail -n +2 <<<"$out")"
    # log the desktop user in at boot, and no console/X blanking either
    run raspi-config nonint do_boot_behaviour B4
    run raspi-config nonint do_blanking 1
    note "the kiosk shows after a reboot; rotation and touch: [display] in $CONF, then install.sh again"
}

start_service() {
    if [ "$CONFIG_EXISTED" = 1 ] && [ "$BOOT_OK" = 1 ]; then
        say "restarting bibbox"
        run systemctl restart bibbox.service
        note "check it: systemctl status bibbox; journalctl -u bibbox -f; sudo bibbox status --config $CONF"
    else
        say "bibbox is enabled but not started: the configuration is the example's"
        note "test the wiring, door by door: sudo -u bibbox bibbox selftest --config $CONF"
        note "then: sudo systemctl start bibbox; sudo bibbox status --config $CONF; journalctl -u bibbox -f"
    fi
}

do_install() {
    local where=""
    [ -n "$ROOT" ] && where=" into $ROOT"
    [ "$DRY" = 1 ] && where="$where (dry run: system commands are only printed)"
    say "installing Bibbox from $SRC$where"
    CONFIG_EXISTED=0
    BOOT_OK=1
    detect_factory
    install_packages
    create_user
    install_program
    install_config
    install_udev
    install_systemd
    install_boot_config
    install_display
    start_service
    echo
    echo "Next:"
    local i=1
    for step in "${NEXT[@]}"; do
        echo "  $i. $step"
        i=$((i + 1))
    done
}

do_uninstall() {
    say "removing Bibbox${ROOT:+ from $ROOT}"
    run systemctl disable --now bibbox.service
    if [ -f "$ROOT$CONF" ]; then
        bibbox firmware kiosk-display --uninstall --config "$ROOT$CONF" --root "$ROOT/" \
            >/dev/null 2>&1 || true
    fi
    rm -f "$ROOT$UNIT" "$ROOT$UDEV" "$ROOT$WATCHDOG" "$ROOT$LINK"
    rm -rf "${ROOT:?}$PREFIX"
    local dir
    dir=$(boot_dir)
    remove_block "$ROOT$dir/config.txt"
    if [ -f "$ROOT$dir/cmdline.txt.bibbox-orig" ]; then
        echo "    the serial console was taken off $dir/cmdline.txt; the original is" \
             "$dir/cmdline.txt.bibbox-orig"
    fi
    run systemctl daemon-reload
    run udevadm control --reload
    if [ "$PURGE" = 1 ]; then
        say "purging the configuration, the site key and the database"
        rm -rf "${ROOT:?}$ETC" "${ROOT:?}$STATE"
        if getent passwd bibbox >/dev/null 2>&1; then
            run userdel bibbox
        fi
    else
        say "kept $ETC (configuration, site key) and $STATE (holds, events); --purge removes them"
    fi
}

case "$ACTION" in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac

#!/usr/bin/env bash
# Install emgd as a boot-and-run service on a Raspberry Pi (Pi 4 or Pi 5, Raspberry Pi OS).
#
#   sudo make install                 # ADS1299 board config
#   sudo EMGD_BOARD=mcp3008 make install
#
# Creates the venv in /opt/emgd, the emgd user and device groups (sysusers.d), its folders
# (tmpfiles.d), udev permissions, the i2c-dev module, the config.txt lines for SPI and I2C,
# /etc/emgd/emgd.toml (only if absent), the shipped models and the unit, and enables the
# service. Re-running it upgrades in place and never overwrites an existing config.
#
# DESTDIR=/some/dir installs into that tree without touching the running system (no pip,
# no systemctl, no udevadm); the tests use it.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}
board=${EMGD_BOARD:-ads1299}
prefix=/opt/emgd
live=$([ -z "$root" ] && echo 1 || echo 0)

say() { printf 'emgd install: %s\n' "$*"; }
die() { printf 'emgd install: %s\n' "$*" >&2; exit 1; }

[ -f "$src/firmware_config/boards/$board.toml" ] \
  || die "unknown board '$board' (firmware_config/boards/*.toml)"
if [ "$live" = 1 ] && [ "$(id -u)" != 0 ]; then die "run as root: sudo make install"; fi

model=$(tr -d '\0' < /proc/device-tree/model 2>/dev/null || echo "not a Raspberry Pi")
extra=pi
case "$model" in *"Raspberry Pi 5"*) extra=pi5 ;; esac
say "board config '$board', hardware: $model (extra [$extra])"

if [ "$live" = 1 ]; then
  python3 -m venv "$prefix/venv"
  "$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
  "$prefix/venv/bin/python" -m pip install --quiet "$src[$extra]"
else
  mkdir -p "$root$prefix"
fi
install -D -m 0644 "$src/README.md" "$root$prefix/README.md"

install -d "$root/usr/share/emgd/models"
for f in "$src"/models/*.onnx "$src"/models/*.md; do
  [ -e "$f" ] && install -m 0644 "$f" "$root/usr/share/emgd/models/"
done

install -D -m 0644 "$src/systemd/emgd.sysusers.conf" "$root/usr/lib/sysusers.d/emgd.conf"
install -D -m 0644 "$src/systemd/emgd.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/emgd.conf"
install -D -m 0644 "$src/firmware_config/99-emgd.rules" "$root/etc/udev/rules.d/99-emgd.rules"
install -D -m 0644 "$src/firmware_config/emgd-modules.conf" \
  "$root/etc/modules-load.d/emgd.conf"
install -D -m 0644 "$src/systemd/emgd.service" "$root/etc/systemd/system/emgd.service"

if [ -e "$root/etc/emgd/emgd.toml" ]; then
  say "keeping the existing /etc/emgd/emgd.toml"
else
  install -D -m 0644 "$src/firmware_config/boards/$board.toml" "$root/etc/emgd/emgd.toml"
  say "wrote /etc/emgd/emgd.toml from firmware_config/boards/$board.toml"
fi

boot_cfg="$root/boot/firmware/config.txt"
[ -e "$boot_cfg" ] || [ ! -e "$root/boot/config.txt" ] || boot_cfg="$root/boot/config.txt"
reboot_needed=0
if grep -qs "^# >>> emgd" "$boot_cfg"; then
  say "config.txt already has the emgd lines"
else
  mkdir -p "$(dirname "$boot_cfg")"
  { printf '\n# >>> emgd (added by systemd/install.sh)\n'
    cat "$src/firmware_config/config.txt"
    printf '# <<< emgd\n'; } >> "$boot_cfg"
  reboot_needed=1
  say "appended SPI/I2C lines to ${boot_cfg#"$root"}"
fi

if [ "$live" = 1 ]; then
  systemd-sysusers
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/emgd.conf
  udevadm control --reload-rules && udevadm trigger
  modprobe i2c-dev || true
  systemctl daemon-reload
  systemctl enable emgd.service
  if [ "$reboot_needed" = 1 ]; then
    say "reboot to enable SPI and I2C; emgd starts at boot"
  else
    systemctl restart emgd.service
    say "emgd restarted: journalctl -u emgd -f, emgd status"
  fi
fi
say "done"

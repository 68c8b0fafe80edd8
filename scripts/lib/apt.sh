# Sourced by the install scripts: installs the Debian packages of a list that are not installed yet.
#   apt_install_missing WHO PACKAGE...
apt_install_missing() {
  local who=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$who: installing ${missing[*]}" >&2
  apt-get update -qq
  # Without recommends, and without debconf questions (miniupnpd asks some; none apply to a lab).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

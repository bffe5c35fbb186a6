# shellcheck shell=bash
# Shared set-up steps for script/test and script/server (sourced, not run).
# Every step either succeeds or stops with one line saying what to install: never a half-made environment.

die() { echo "wyoming-flux setup: $*" >&2; exit 1; }

# The private venv uv goes into where pip refuses --user (PEP 668: Debian 12, Ubuntu 24.04, Raspberry Pi OS).
# Data, not a cache: script/server links ~/.local/bin/uv to it.
uv_boot_dir() { echo "${XDG_DATA_HOME:-$HOME/.local/share}/wyoming-flux/uv"; }

# uv: on PATH, in ~/.local/bin, else installed with pip --user, a private venv, or Astral's installer (curl or wget).
ensure_uv() {
  local candidate boot
  boot=$(uv_boot_dir)
  for candidate in "$(command -v uv 2>/dev/null)" "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv" "$boot/bin/uv"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then UV=$candidate; return 0; fi
  done
  echo "wyoming-flux setup: installing uv ..." >&2
  if command -v python3 >/dev/null 2>&1 && python3 -m pip install -q --user uv >/dev/null 2>&1; then
    UV=$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null) && [ -x "$UV" ] && return 0
  fi
  if command -v python3 >/dev/null 2>&1 && python3 -m venv "$boot" >/dev/null 2>&1 \
      && "$boot/bin/python" -m pip install -q uv >/dev/null 2>&1; then
    UV="$boot/bin/uv"; return 0
  fi
  rm -rf "$boot"
  # Astral's installer, with curl or else wget (a minimal Debian 12 has wget only, and no pip or venv module)
  local installer=https://astral.sh/uv/install.sh
  if { { command -v curl >/dev/null 2>&1 && curl -LsSf "$installer" 2>/dev/null | sh >/dev/null 2>&1; } \
      || { command -v wget >/dev/null 2>&1 && wget -qO- "$installer" 2>/dev/null | sh >/dev/null 2>&1; }; } \
      && [ -x "$HOME/.local/bin/uv" ]; then
    UV="$HOME/.local/bin/uv"; return 0
  fi
  die "could not install uv. Install it (pipx install uv, or see https://docs.astral.sh/uv/getting-started/installation/) and run this again."
}

# Prints "MAJOR.MINOR.PATCH" of a Python interpreter, or nothing if it does not run.
python_version() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true; }

# version_at_least 3.14.0 3.14.2 -> false
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# find_python MIN [ENV_VAR] [newer]: the path of a Python >= MIN (e.g. 3.14.2) in the series MIN names, or with
# "newer" in any later series too. Looks at $ENV_VAR, (with "newer": python3 on PATH,) pythonX.Y on PATH, uv's
# interpreters, then lets uv install one.
find_python() {
  local min=$1 var=${2:-} newer=${3:-} series candidate version
  series=$(echo "$min" | cut -d. -f1,2)
  if [ -n "$var" ] && [ -n "${!var:-}" ]; then
    version=$(python_version "${!var}")
    [ -n "$version" ] && version_at_least "$version" "$min" && { echo "${!var}"; return 0; }
    die "$var=${!var} is not a Python >= $min."
  fi
  if [ "$newer" = newer ]; then  # the system's own Python serves if it is recent enough
    candidate=$(command -v python3 2>/dev/null || true)
    version=$([ -n "$candidate" ] && python_version "$candidate" || true)
    if [ -n "$version" ] && version_at_least "$version" "$min"; then echo "$candidate"; return 0; fi
  fi
  for candidate in "$(command -v "python$series" 2>/dev/null)" "$("$UV" python find "$series" 2>/dev/null)"; do
    [ -n "$candidate" ] || continue
    version=$(python_version "$candidate")
    if [ -n "$version" ] && version_at_least "$version" "$min"; then echo "$candidate"; return 0; fi
  done
  echo "wyoming-flux setup: installing Python $series with uv ..." >&2
  if "$UV" python install "$series" >/dev/null 2>&1; then
    candidate=$("$UV" python find "$series" 2>/dev/null)
    version=$(python_version "$candidate")
    if [ -n "$version" ] && version_at_least "$version" "$min"; then echo "$candidate"; return 0; fi
  fi
  die "no Python >= $min found and uv could not install one. Install it with '$UV python install $series' (it downloads from GitHub) or from python.org, put it on PATH as python$series, and run this again."
}

# ensure_venv DIR PYTHON: DIR is a venv of exactly that interpreter's version, else it is rebuilt.
ensure_venv() {
  local dir=$1 python=$2 want have
  want=$(python_version "$python")
  have=""
  if [ -x "$dir/bin/python" ]; then have=$(python_version "$dir/bin/python" || true); fi
  if [ "$have" != "$want" ]; then
    [ -e "$dir" ] && echo "wyoming-flux setup: $dir has Python ${have:-that does not run}, not $want: rebuilding it" >&2
    rm -rf "$dir"
    "$UV" venv -q -p "$python" "$dir" || { rm -rf "$dir"; die "could not create $dir with $python."; }
  fi
}

# install_into DIR ARGS...: uv pip install into the venv; on failure the venv is removed, so the next run
# starts clean instead of on half-installed packages.
install_into() {
  local dir=$1; shift
  "$UV" pip install -q -p "$dir/bin/python" "$@" || { rm -rf "$dir"; die "installing into $dir failed (see above); run this again once the cause is fixed."; }
}

# ensure_chromium: prints the path of a Chromium (or Chrome) for the browser test: $WYOMING_FLUX_CHROMIUM, one on
# PATH, else Debian's `chromium` package installed with apt-get (as root). Playwright's own browser download is
# never used.
ensure_chromium() {
  local candidate
  for candidate in "${WYOMING_FLUX_CHROMIUM:-}" "$(command -v chromium 2>/dev/null)" \
      "$(command -v google-chrome 2>/dev/null)" "$(command -v google-chrome-stable 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "wyoming-flux setup: installing chromium (Debian package) for the browser test ..." >&2
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        && command -v chromium >/dev/null 2>&1; then
      command -v chromium; return 0
    fi
  fi
  die "the browser test needs Chromium: apt-get install chromium (as root), or set WYOMING_FLUX_CHROMIUM to a Chromium or Chrome binary."
}

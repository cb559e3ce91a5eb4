#!/usr/bin/env bash
# The documentation page in a real browser: starts the gateway on a free port over the
# running local stack, loads /docs/dev (which redirects to /docs/dev/index.html) in
# headless Chromium, and checks the DOM Chromium built: a title, every operation of the
# OpenAPI document (GET /docs/spec, JSON) shown as a `section.operation` whose heading
# reads "METHOD path", and no <script> element. It also takes a screenshot and checks
# that it is not trivially small (the page was painted). `make test` and
# `make docs-browser` run it.
#
# Chromium: `chromium` from PATH, or Debian's package installed with apt-get (sudo when
# not root). BROWSER_CARGO_ARGS are passed to the gateway's cargo build.
# Needs the emulator running with the stack deployed (`make emulator-up deploy-local`);
# the variables of .fanout/local.env are read from the environment or from that file.
# The work directory (DOM, screenshot, the gateway's log) is a temporary one, kept when a
# check fails (its path is printed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LOCAL_ENV="$ROOT/.fanout/local.env"
log() { echo "browser: $*"; }
fail() { echo "browser: $*" >&2; exit 1; }
started=$(date +%s)

command -v python3 > /dev/null || fail "python3 is needed"
command -v curl > /dev/null || fail "curl is needed"

# --- Chromium --------------------------------------------------------------------------
if ! command -v chromium > /dev/null; then
    log "no chromium on PATH: installing Debian's package"
    command -v apt-get > /dev/null || fail "no chromium and no apt-get to install it"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo > /dev/null || fail "no chromium, not root and no sudo to install it"
        SUDO="sudo"
    fi
    install_started=$(date +%s)
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
    command -v chromium > /dev/null || fail "apt-get installed chromium but it is not on PATH"
    log "chromium installed in $(( $(date +%s) - install_started )) s"
fi
log "$(chromium --version 2>/dev/null || echo 'chromium (version unknown)')"

# --- the gateway -----------------------------------------------------------------------
if [ -z "${FANOUT_TABLE:-}" ]; then
    [ -f "$LOCAL_ENV" ] || fail "no $LOCAL_ENV: start the local stack first (make emulator-up deploy-local)"
    set -a
    # shellcheck disable=SC1090
    . "$LOCAL_ENV"
    set +a
fi

# shellcheck disable=SC2086
cargo build --quiet -p fanout-functions ${BROWSER_CARGO_ARGS:-} --bin gateway
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fanout-browser.XXXXXX")"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
GATEWAY_PID=""
finish() {
    local status=$?
    if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
    fi
    if [ "$status" = 0 ]; then
        rm -rf "$WORK"
    else
        log "kept $WORK (DOM, screenshot, Chromium's and the gateway's logs)"
    fi
    log "$(( $(date +%s) - started )) s"
}
trap finish EXIT
FANOUT_ADDR="127.0.0.1:$PORT" "$TARGET/debug/gateway" > "$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$BASE/version" && break
    kill -0 "$GATEWAY_PID" 2>/dev/null || { tail -20 "$WORK/gateway.log" >&2; fail "the gateway exited"; }
    sleep 0.2
done
curl -sf -o /dev/null "$BASE/version" || fail "the gateway did not answer on $BASE"
log "gateway on $BASE"

curl -sf -H 'Accept: application/json' -o "$WORK/spec.json" "$BASE/docs/spec" \
    || fail "GET /docs/spec (application/json) failed"

# --- the page in Chromium --------------------------------------------------------------
# Its own profile directory per run, so that concurrent runs do not share one.
browse() {
    timeout "${BROWSER_TIMEOUT:-120}" chromium --headless=new --no-sandbox --disable-gpu \
        --no-first-run --no-default-browser-check --disable-extensions \
        --user-data-dir="$WORK/profile" "$@"
}
browse --dump-dom "$BASE/docs/dev" > "$WORK/dom.html" 2> "$WORK/chromium-dom.log" \
    || { tail -20 "$WORK/chromium-dom.log" >&2; fail "chromium --dump-dom $BASE/docs/dev failed"; }
browse --screenshot="$WORK/page.png" --window-size=1280,2000 "$BASE/docs/dev" \
    > "$WORK/chromium-shot.log" 2>&1 \
    || { tail -20 "$WORK/chromium-shot.log" >&2; fail "chromium --screenshot $BASE/docs/dev failed"; }

[ -s "$WORK/page.png" ] || fail "no screenshot written"
shot_bytes=$(stat -c %s "$WORK/page.png")
[ "$(head -c 8 "$WORK/page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
    || fail "the screenshot is not a PNG"
[ "$shot_bytes" -gt 10240 ] || fail "the screenshot is $shot_bytes bytes (<= 10 KB): the page did not render"
log "screenshot: $shot_bytes bytes"

# The DOM as Chromium built it, checked against the document (stdlib only).
python3 - "$WORK/dom.html" "$WORK/spec.json" <<'PY'
import json
import sys
from html.parser import HTMLParser

dom_path, spec_path = sys.argv[1], sys.argv[2]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Page(HTMLParser):
    """Title, <script> count, and each section.operation: its data- attributes and the
    text of its heading."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.scripts = 0
        self.operations = []  # dicts: method, path, heading
        self._in_title = False
        self._section_depth = 0  # nesting depth of <section> inside the current operation
        self._current = None
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "section":
            if self._current is not None:
                self._section_depth += 1
            elif "operation" in (attrs.get("class") or "").split():
                self._current = {
                    "method": attrs.get("data-method") or "",
                    "path": attrs.get("data-path") or "",
                    "heading": "",
                }
                self._section_depth = 1
        elif tag == "h3" and self._current is not None:
            self._in_heading = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "h3":
            self._in_heading = False
        elif tag == "section" and self._current is not None:
            self._section_depth -= 1
            if self._section_depth == 0:
                self.operations.append(self._current)
                self._current = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_heading and self._current is not None:
            self._current["heading"] += data


with open(dom_path, encoding="utf-8") as f:
    dom = f.read()
with open(spec_path, encoding="utf-8") as f:
    spec = json.load(f)

page = Page()
page.feed(dom)
page.close()

problems = []
if not page.title.strip():
    problems.append("the page has no title")
if page.scripts:
    problems.append(f"the page has {page.scripts} <script> element(s)")

expected = {
    (method.upper(), path)
    for path, item in (spec.get("paths") or {}).items()
    for method in METHODS
    if isinstance(item, dict) and isinstance(item.get(method), dict)
}
if not expected:
    problems.append("the OpenAPI document has no operations")

shown = {}
for op in page.operations:
    key = (op["method"].upper(), op["path"])
    heading = " ".join(op["heading"].split())
    if key in shown:
        problems.append(f"{key[0]} {key[1]} is shown twice")
    shown[key] = heading
    if heading != f"{key[0]} {key[1]}":
        problems.append(f"the heading of {key[0]} {key[1]} reads {heading!r}")

for method, path in sorted(expected - shown.keys(), key=lambda k: (k[1], k[0])):
    problems.append(f"missing from the page: {method} {path}")
for method, path in sorted(shown.keys() - expected, key=lambda k: (k[1], k[0])):
    problems.append(f"on the page but not in the document: {method} {path}")

if problems:
    for problem in problems:
        print(f"browser: {problem}", file=sys.stderr)
    sys.exit(1)
print(f"browser: title {page.title.strip()!r}; all {len(expected)} operations shown; no script")
PY

#!/bin/sh
# Chromium for the export server (see server.mjs). The kernel sends it SIGKILL
# when its parent, the export server's node process, dies, however it dies
# (PR_SET_PDEATHSIG, via util-linux's setpriv), so no browser outlives its server.
# The real binary: EXPORTER_CHROMIUM_BIN (set by server.mjs from PUPPETEER_EXECUTABLE_PATH).
exec setpriv --pdeathsig KILL -- "${EXPORTER_CHROMIUM_BIN:-/usr/lib/chromium/chromium}" "$@"

#!/bin/sh
# tests/test_site.py drives a real headless Chromium, and the site build prints the book's PDF
# with it (scripts/pdf.py). On Debian/Ubuntu as root we install Debian's chromium package;
# elsewhere the browser tests and the PDF skip with a reason (never under CI).
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests..."
    apt-get install -y -qq chromium >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } ||
        echo "Could not install chromium: the browser tests and the PDF will fail under CI and skip elsewhere."
else
    echo "Chromium not found: the browser tests and the book's PDF will skip (install it: sudo apt-get install chromium)."
fi

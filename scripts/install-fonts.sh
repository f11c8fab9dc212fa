#!/bin/sh
# Figures label tokens in Chinese: matplotlib needs a font with CJK glyphs, or it draws empty boxes.
# On Debian/Ubuntu as root we install WenQuanYi Micro Hei; elsewhere we say what to do.
if fc-list 2>/dev/null | grep -qiE 'WenQuanYi|Noto Sans CJK|Noto Sans SC|Source Han Sans'; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing a CJK font for the figures (fonts-wqy-microhei)..."
    (apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1; }) ||
        echo "Could not install fonts-wqy-microhei: Chinese labels in figures will show as boxes."
    rm -rf "${HOME}/.cache/matplotlib"  # let matplotlib see the new font
else
    echo "No CJK font found: Chinese labels in figures will show as boxes." \
         "Install one (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei)."
fi

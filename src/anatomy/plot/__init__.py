"""Figures. Each function takes what a computing module returns and gives a matplotlib Figure.

Nothing here changes matplotlib's global settings: the style applies inside each function only.
Chinese text needs a CJK font; the first one found on the machine is used (on Debian:
``apt-get install fonts-wqy-microhei``). One submodule per chapter topic.
"""

from .context import differences, word_similarity
from .embedding import projection
from .lm_head import temperatures
from .style import cjk_font, families, style
from .tokens import next_tokens, tokens

__all__ = [
    "cjk_font",
    "differences",
    "families",
    "next_tokens",
    "projection",
    "style",
    "temperatures",
    "tokens",
    "word_similarity",
]

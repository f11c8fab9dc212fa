"""Figures. Each function takes what a computing module returns and gives a matplotlib Figure.

Nothing here changes matplotlib's global settings: the style applies inside each function only.
Chinese text needs a CJK font; the first one found on the machine is used (on Debian:
``apt-get install fonts-wqy-microhei``). One submodule per chapter topic.
"""

from .ablation import ablation_gaps, dose_response, head_drops, neuron_histograms, neuron_scaling
from .attention import attention_bar, attention_heads, live_attention, rope, timing, window
from .context import differences, word_similarity
from .dissect import Download, head_grid, head_map, parameter_breakdown, sink_shares, svg_download, weight_corner
from .embedding import projection
from .lens import language_curves, live_lens, logit_lens, residual_stream
from .lm_head import live_temperature, temperatures
from .brains import influence, reading_vs_writing, schedules
from .ffn import neuron_tokens, neuron_weights
from .task_vectors import function_vectors
from .refusal_direction import refusal
from .sae import live_sae, sae_frontier, sae_report
from .steer import steering
from .circuits import attribution_scatter, back_patching, component_split, handover_histogram, knockout, live_patching, patching_grid
from .probe import probe_map, probe_r2
from .relations import relation_layers
from .live import LiveFigure, live_figure
from .style import book_style, cjk_font, font_families
from .tokenization import next_tokens, tokens

__all__ = ["ablation_gaps", "dose_response", "head_drops", "neuron_histograms", "neuron_scaling", "sae_report", "function_vectors", "refusal", "attribution_scatter", "back_patching", "patching_grid", "language_curves", "logit_lens", "residual_stream", "relation_layers", "probe_map", "probe_r2", "steering", "influence", "reading_vs_writing", "schedules", "neuron_tokens", "neuron_weights", "attention_bar", "attention_heads", "rope", "timing", "window", "Download", "head_grid", "head_map", "parameter_breakdown", "sink_shares", "svg_download", "weight_corner", "differences", "word_similarity", "projection", "temperatures", "cjk_font", "font_families", "next_tokens", "book_style", "tokens", "component_split", "handover_histogram", "knockout", "sae_frontier", "LiveFigure", "live_figure", "live_lens", "live_temperature", "live_attention", "live_patching", "live_sae"]

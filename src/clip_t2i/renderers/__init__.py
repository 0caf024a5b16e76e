"""clip_t2i.renderers."""

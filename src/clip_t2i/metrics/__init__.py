"""clip_t2i.metrics."""

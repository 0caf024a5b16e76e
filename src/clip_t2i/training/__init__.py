"""clip_t2i.training."""

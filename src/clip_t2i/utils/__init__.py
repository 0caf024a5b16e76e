"""clip_t2i.utils."""

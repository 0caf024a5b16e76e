"""clip_t2i.guidance."""

"""clip_t2i.gan."""

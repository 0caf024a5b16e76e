"""Loading CLIPs: open_clip names and tags, local checkpoints, CLIPAG / FARE / TeCoA files, project configs."""

from clip_t2i.backbones.clip import ClipModel
from clip_t2i.backbones.loading import build_from_config, load_clip, read_checkpoint, unwrap_state_dict
from clip_t2i.backbones.registry import add_model_config, get_model_config, list_models
from clip_t2i.backbones.tokenizer import WordTokenizer

__all__ = [
    "ClipModel",
    "WordTokenizer",
    "add_model_config",
    "build_from_config",
    "get_model_config",
    "list_models",
    "load_clip",
    "read_checkpoint",
    "unwrap_state_dict",
]

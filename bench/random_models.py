"""Random-weight checkpoints with the exact architectures of Cosmos-Reason2-2B, -8B and the
Cosmos3-Edge reasoner.

Speed and memory do not depend on weight values, so these stand in for the gated checkpoints;
nothing is downloaded. They reuse the tiny test models' tokenizers and processors (real geometry).
"""

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import shutil
import sys
import tempfile
from typing import Any

from cosmos_reason_ros.core.answers.families import family_for_model_type, family_spec
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

VOCAB_SIZE = 151936
"""Qwen's vocabulary (the real embedding and output sizes); the tiny tokenizer uses its start."""

# The published Qwen3-VL-2B/8B-Instruct config.json values (Cosmos-Reason2-2B/8B are post-trained
# from them and keep the architecture). Checked against public mirrors of the configs, see
# bench/README.md; parameter counts reproduce NVIDIA's and Qwen's published sizes.
_TEXT_COMMON: dict[str, Any] = {
    'vocab_size': VOCAB_SIZE, 'head_dim': 128, 'hidden_act': 'silu', 'rms_norm_eps': 1e-6,
    'max_position_embeddings': 262144, 'attention_bias': False,
    'rope_parameters': {'rope_type': 'default', 'rope_theta': 5000000.0,
                        'mrope_interleaved': True, 'mrope_section': [24, 20, 20]},
}
_VISION_COMMON: dict[str, Any] = {
    'patch_size': 16, 'temporal_patch_size': 2, 'spatial_merge_size': 2, 'in_channels': 3,
    'num_position_embeddings': 2304, 'hidden_act': 'gelu_pytorch_tanh', 'num_heads': 16,
}
ARCHITECTURES: dict[str, dict[str, Any]] = {
    '2b': {
        'text': {'hidden_size': 2048, 'intermediate_size': 6144, 'num_hidden_layers': 28,
                 'num_attention_heads': 16, 'num_key_value_heads': 8,
                 'tie_word_embeddings': True},
        'vision': {'depth': 24, 'hidden_size': 1024, 'intermediate_size': 4096,
                   'out_hidden_size': 2048, 'deepstack_visual_indexes': [5, 11, 17]},
        'tie_word_embeddings': True,
    },
    '8b': {
        'text': {'hidden_size': 4096, 'intermediate_size': 12288, 'num_hidden_layers': 36,
                 'num_attention_heads': 32, 'num_key_value_heads': 8,
                 'tie_word_embeddings': False},
        'vision': {'depth': 27, 'hidden_size': 1152, 'intermediate_size': 4304,
                   'out_hidden_size': 4096, 'deepstack_visual_indexes': [8, 16, 24]},
        'tie_word_embeddings': False,
    },
}
"""Architecture of each Cosmos-Reason2 size (Qwen3VLForConditionalGeneration)."""

EDGE = 'edge'
"""The Cosmos3-Edge reasoner: transformers 5.23's Cosmos3EdgeConfig defaults are its published
architecture (28 dense relu2 blocks of width 2048, vocabulary 131072, SigLIP2 vision tower of
27 layers, projector 11520), so the config is built from them."""
SIZES = (*sorted(ARCHITECTURES), EDGE)

_MARKER = 'random_checkpoint.json'


def qwen3_vl_config(size: str, token_ids: dict[str, int]) -> Any:
    """The Qwen3VLConfig of one size, with the special token ids of the tokenizer used.

    Args:
        size: '2b' or '8b'.
        token_ids: image_token_id, video_token_id, vision_start_token_id, vision_end_token_id.
    """
    from transformers import Qwen3VLConfig

    architecture = ARCHITECTURES[size]
    return Qwen3VLConfig(
        text_config={**_TEXT_COMMON, **architecture['text']},
        vision_config={**_VISION_COMMON, **architecture['vision']},
        tie_word_embeddings=architecture['tie_word_embeddings'], **token_ids)


def edge_config() -> Any:
    """The Cosmos3-Edge reasoner's config (its token ids are the tiny Edge tokenizer's too)."""
    from transformers import Cosmos3EdgeConfig

    return Cosmos3EdgeConfig()


def model_class(config: Any) -> Any:
    """The transformers class of a config's family (Qwen3-VL or Cosmos3-Edge)."""
    import transformers

    return getattr(transformers, family_spec(family_for_model_type(config.model_type)).model_class)


def parameter_counts(config: Any) -> dict[str, int]:
    """Parameters of the whole model, its language model and what decoding reads per token.

    Decoding one token reads every decoder layer, the final norm and the output head, but only
    one row of the input embedding; with tied embeddings the head is the embedding matrix.
    Vision is everything else (encoder and projector).
    """
    import torch

    with torch.device('meta'):
        model = model_class(config)(config)
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    language = model.model.language_model
    embedding = language.embed_tokens.weight.numel()
    language_total = sum(p.numel() for p in language.parameters())
    head = model.lm_head.weight.numel()
    language_with_head = language_total + (0 if config.tie_word_embeddings else head)
    return {
        'total': total, 'vision': total - language_with_head,
        'language': language_with_head,
        'read_per_token': language_total - embedding + head,
    }


def build_random_checkpoint(path: Path, size: str, *, dtype: str = 'float32',
                            device: str = 'cpu', seed: int = 0) -> Path:
    """Write a random checkpoint of one size to `path` (kept if one with these settings is there).

    Args:
        path: Directory to write.
        size: '2b', '8b' or 'edge'.
        dtype: Weight dtype on disk ('float32', 'bfloat16', 'float16').
        device: Where to initialise the weights ('cuda' is much faster for 8b).
        seed: Seed of the random weights.

    Returns:
        The checkpoint directory.
    """
    import torch
    from transformers import AutoProcessor, GenerationConfig

    path = Path(path).absolute()
    wanted = {'size': size, 'dtype': dtype, 'seed': seed, 'version': 1}
    marker = path / _MARKER
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return path
    if path.exists():
        if not marker.exists():
            raise FileExistsError(f"'{path}' exists and holds no random checkpoint")
        shutil.rmtree(path)
    family = ModelFamily.COSMOS3_EDGE if size == EDGE else ModelFamily.QWEN3_VL
    with tempfile.TemporaryDirectory() as scratch:
        tiny = build_tiny_checkpoint(Path(scratch) / 'tiny', family)
        processor = AutoProcessor.from_pretrained(tiny)
        generation = GenerationConfig.from_pretrained(tiny)
    tokenizer = processor.tokenizer
    token_ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
        ('vision_start_token_id', '<|vision_start|>'), ('vision_end_token_id', '<|vision_end|>'))}
    config = edge_config() if size == EDGE else qwen3_vl_config(size, token_ids)
    if size == EDGE and any(getattr(config, name) != value for name, value in token_ids.items()):
        raise AssertionError(f'the Edge config ids differ from the tiny tokenizer: {token_ids}')
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        # Initialised in the target dtype: an 8B model in fp32 would need 35 GB first.
        model = model_class(config)._from_config(config, dtype=getattr(torch, dtype))
    with torch.no_grad():
        # As in the tiny model: control tokens never win, so answers run to max_new_tokens.
        special = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens]
        model.get_output_embeddings().weight[special] = 0.0
    model.generation_config = generation
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent))
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / _MARKER).write_text(json.dumps(wanted) + '\n')
        staging.chmod(0o755)  # mkdtemp makes it private; a server may run as another user
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.random_models {2b,8b,edge} [OUT_DIR] [--dtype ...]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('size', choices=SIZES)
    parser.add_argument('out_dir', nargs='?', type=Path, default=None,
                        help='write a checkpoint here; without it only print the counts')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16', 'float16'))
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    config = edge_config() if args.size == EDGE else qwen3_vl_config(
        args.size, {'image_token_id': 151655, 'video_token_id': 151656,
                    'vision_start_token_id': 151652, 'vision_end_token_id': 151653})
    counts = parameter_counts(config)
    print(json.dumps({name: f'{value / 1e9:.3f} B' for name, value in counts.items()}))
    if args.out_dir is not None:
        print(build_random_checkpoint(args.out_dir, args.size, dtype=args.dtype,
                                      device=args.device))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Tiny, randomly initialised checkpoints of every supported family, for tests, demos, benchmarks.

Qwen3-VL (Reason2), Qwen2.5-VL (Reason1), Cosmos3-Edge and Cosmos3-Omni (Nano/Super) reasoners,
built with the real transformers classes. They load through the same code path as the real
checkpoints and answer gibberish.
"""

import argparse
from collections.abc import Sequence
import json
import math
import os
from pathlib import Path
import re
import shutil
import sys
import tempfile
from typing import Any

from cosmos_reason_ros.core.answers.modes import ModelFamily

MARKER_FILE = 'tiny_checkpoint.json'
"""Written last into a finished checkpoint; holds the arguments it was built with."""

_FORMAT_VERSION = 4
"""Bump when the builder's output changes, so cached checkpoints are rebuilt."""

SPECIAL_TOKENS = (
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>',
    '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
)
"""Qwen's control tokens (special: skipped when decoding an answer)."""

TEXT_TOKENS = ('<think>', '</think>')
"""Added tokens that, as in the real Qwen3 tokenizers, are not special: they decode as text."""

EDGE_SPECIAL_TOKENS = (
    '<unk>', '<s>', '</s>', *(f'<SPECIAL_{i}>' for i in range(3, 10)), '<|im_start|>',
    '<|im_end|>', '<think>', '</think>', *(f'<SPECIAL_{i}>' for i in range(14, 18)),
    '<|video_pad|>', '<|image_pad|>', '<|vision_start|>', '<|vision_end|>',
)
"""The first 22 ids of the Cosmos3-Edge (Nemotron-style) vocabulary. Fixed by the transformers
5.23 config: pad 0, bos 1, end of turn <|im_end|> 11, video pad 18, image pad 19, vision start
20, vision end 21. The think tags are single tokens of their own; their ids (12, 13) and the
<SPECIAL_n> fillers are this builder's choice."""

_CORPUS = """\
You are a helpful assistant. Caption the video in detail. What can be the next immediate action?
Describe the notable events in the provided video. Provide the result in json format with
'mm:ss.ff' format for time depiction for each event. Use keywords 'start', 'end' and 'caption'
in the json output. Locate the bounding box of the red cup. Return a json.
The robot arm moves toward the blue tape roll on the table, grasps it with the gripper and
places it into the basket. The robot's task is: pick up the cup. Specify the 2D trajectory your
end effector should follow in pixel space. Return the trajectory coordinates in JSON format like
this: {"point_2d": [x, y], "label": "gripper trajectory"}.
The video depicts the observation from the vehicle's camera. You need to think step by step and
identify the objects in the scene that are critical for safe navigation. Is it safe to turn right?
The car is stopped at the intersection facing a crosswalk; a pedestrian is crossing the street.
Answer the question using the following format: <think> Your reasoning. </think> Write your final
answer immediately after the tag. Answer with the option's letter from the given choices directly.
(A) yes (B) no (C) the person walks away (D) the door opens. Okay, let's see. The user is asking
whether the path is clear. First, I look at the left side of the frame, then at the right side.
A forklift drives past the shelves in the warehouse while a worker carries a box to the truck.
0 1 2 3 4 5 6 7 8 9 10 25 50 100 195 630 485 657 496 423 388 [ ] { } , : " 00:00.10 00:02.10
"""

_QWEN3_VL_CHAT_TEMPLATE = (
    # Mirrors Qwen3-VL-Instruct's template (without tool calls): system turn only when given,
    # media placeholders where the items stand, then the generation prompt.
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' }}"
    '{%- if messages[0].content is string %}{{- messages[0].content }}'
    "{%- else %}{%- for content in messages[0].content %}{%- if 'text' in content %}"
    '{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}'
    "{{- '<|im_end|>\\n' }}"
    '{%- endif %}'
    '{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}'
    '{%- for message in messages %}'
    "{%- if message.role == 'user' %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    '{%- if message.content is string %}{{- message.content }}'
    '{%- else %}{%- for content in message.content %}'
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    '{%- set image_count.value = image_count.value + 1 %}'
    '{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}'
    '<|vision_start|><|image_pad|><|vision_end|>'
    "{%- elif content.type == 'video' or 'video' in content %}"
    '{%- set video_count.value = video_count.value + 1 %}'
    '{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}'
    '<|vision_start|><|video_pad|><|vision_end|>'
    "{%- elif 'text' in content %}{{- content.text }}"
    '{%- endif %}{%- endfor %}{%- endif %}'
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    '{%- if message.content is string %}{{- message.content }}'
    "{%- else %}{%- for content in message.content %}{%- if 'text' in content %}"
    '{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}'
    "{{- '<|im_end|>\\n' }}"
    '{%- endif %}'
    '{%- endfor %}'
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_COSMOS3_EDGE_CHAT_TEMPLATE = (
    # Nemotron-style, as NVIDIA's Cosmos3-Edge template: ChatML turns, media where the items
    # stand, and an enable_thinking switch that defaults to on. On, the generation prompt opens
    # the reasoning itself ('<think>\n'), so the answer holds only the closing tag; off, it
    # closes an empty one.
    '{%- set enable_thinking = enable_thinking if enable_thinking is defined else true %}'
    '{%- for message in messages %}'
    "{{- '<|im_start|>' + message.role + '\n' }}"
    '{%- if message.content is string %}{{- message.content }}'
    '{%- else %}{%- for content in message.content %}'
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    '<|vision_start|><|image_pad|><|vision_end|>'
    "{%- elif content.type == 'video' or 'video' in content %}"
    '<|vision_start|><|video_pad|><|vision_end|>'
    "{%- elif 'text' in content %}{{- content.text }}"
    '{%- endif %}{%- endfor %}{%- endif %}'
    "{{- '<|im_end|>\n' }}"
    '{%- endfor %}'
    '{%- if add_generation_prompt %}'
    "{{- '<|im_start|>assistant\n' }}"
    "{%- if enable_thinking %}{{- '<think>\n' }}{%- else %}{{- '<think></think>' }}{%- endif %}"
    '{%- endif %}'
)

_QWEN2_5_VL_CHAT_TEMPLATE = (
    # Mirrors Qwen2.5-VL-Instruct's template: it inserts the default system prompt when the
    # conversation has none.
    '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}'
    '{% for message in messages %}'
    "{% if loop.first and message['role'] != 'system' %}"
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}'
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    '{% set image_count.value = image_count.value + 1 %}'
    '{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}'
    '<|vision_start|><|image_pad|><|vision_end|>'
    "{% elif content['type'] == 'video' or 'video' in content %}"
    '{% set video_count.value = video_count.value + 1 %}'
    '{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}'
    '<|vision_start|><|video_pad|><|vision_end|>'
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    '{% endfor %}<|im_end|>\n{% endif %}'
    '{% endfor %}'
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'
)


def build_tiny_checkpoint(path: str | os.PathLike,
                          family: ModelFamily = ModelFamily.QWEN3_VL, *, seed: int = 0,
                          head_dim: int = 16, overwrite: bool = False) -> Path:
    """Write a small, real checkpoint (config, random weights, tokenizer, processor) to `path`.

    The checkpoint keeps the real models' vision geometry (Qwen3-VL and Cosmos3-Omni: 16 px
    patches, merge 2, two frames per temporal patch; Qwen2.5-VL: 14 px patches, merge 2, two
    frames; Cosmos3-Edge: 16 px patches, merge 2, one frame per temporal patch), tokenizer
    layout and chat conventions, so everything from the processor to the coordinate conventions
    behaves as with the real model.
    A directory that already holds a checkpoint built with the same arguments is returned as is.

    Args:
        path: Directory to write (created; its parent must be writable).
        family: Which architecture to build.
        seed: Seed of the random weights.
        head_dim: Attention head size of the language and vision towers (vLLM wants >= 32).
        overwrite: Rebuild even when `path` already holds a tiny checkpoint. One written by an
            older version of this builder is rebuilt anyway.

    Returns:
        The checkpoint directory.

    Raises:
        ValueError: head_dim is not a positive multiple of 8.
        FileExistsError: `path` holds something else than a tiny checkpoint with these arguments
            (a tiny checkpoint built differently is replaced only with overwrite=True; other
            content is never deleted).
    """
    family = ModelFamily(family)
    if head_dim < 8 or head_dim % 8:
        raise ValueError(f'head_dim must be a positive multiple of 8, got {head_dim}')
    path = Path(path).expanduser().absolute()
    wanted = {'format_version': _FORMAT_VERSION, 'family': family.value, 'seed': seed,
              'head_dim': head_dim}
    if path.exists():
        existing = _read_marker(path)
        if existing == wanted and not overwrite:
            return path
        if existing is None and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"'{path}' exists and holds no tiny checkpoint: choose another directory")
        stale = existing is not None and {**existing, 'format_version': _FORMAT_VERSION} == wanted
        if existing is not None and not overwrite and not stale:
            raise FileExistsError(
                f"'{path}' holds a tiny checkpoint built with {existing}, not {wanted}: pass "
                'overwrite=True (--overwrite) to replace it, or choose another directory')
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and move it in place, so a crash never leaves a half checkpoint
    # that looks complete, and concurrent builders do not write into each other's files.
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent))
    try:
        _write_checkpoint(staging, family, seed=seed, head_dim=head_dim)
        (staging / MARKER_FILE).write_text(json.dumps(wanted, indent=2) + '\n')
        staging.chmod(0o755)  # mkdtemp makes it private; servers may run as another user
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_checkpoint(path: Path, family: ModelFamily, *, seed: int, head_dim: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    edge = family is ModelFamily.COSMOS3_EDGE
    tokenizer = build_edge_tokenizer() if edge else build_tokenizer()
    special = EDGE_SPECIAL_TOKENS if edge else SPECIAL_TOKENS
    processor = _build_processor(family, tokenizer)
    config = _build_config(family, tokenizer, head_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model_class(family)(config)
    control = [token for token in special if token not in TEXT_TOKENS]
    _silence_control_tokens(model, tokenizer, control)
    model.generation_config = _generation_config(tokenizer, family, control)
    model.eval()
    # A one-shard progress bar is noise in tests and CLI output.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
        processor.save_pretrained(path)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if edge:
        _add_vllm_edge_layout(path)


def _add_vllm_edge_layout(path: Path) -> None:
    """Make a Cosmos3-Edge checkpoint loadable by vLLM (0.32) too.

    vLLM reads Edge only from NVIDIA's unified layout: weights under transformer/ (or
    vision_encoder/), and a projector_config in config.json. transformers writes the unified
    weight names already, except the vision tower's MLP, which its save-time renaming turns
    into up_proj/down_proj; SigLIP2 (and vLLM) call them fc1/fc2. transformers still loads the
    root model.safetensors and ignores the added keys.
    """
    from safetensors.torch import load_file, save_file

    config = json.loads((path / 'config.json').read_text())
    config['projector_config'] = {
        'input_hidden_size': config['vision_config']['hidden_size'],
        'spatial_merge_size': config['vision_config']['spatial_merge_size'],
        'merger_intermediate_size': config['projector_hidden_size'],
        'out_hidden_size': config['text_config']['hidden_size'],
        'use_postshuffle_norm': False,
    }
    (path / 'config.json').write_text(json.dumps(config, indent=2) + '\n')
    weights = {}
    for name, tensor in load_file(str(path / 'model.safetensors')).items():
        if name.startswith('model.visual.'):
            name = re.sub(r'\.mlp\.up_proj\.', '.mlp.fc1.', name)
            name = re.sub(r'\.mlp\.down_proj\.', '.mlp.fc2.', name)
        weights[name] = tensor.contiguous()
    (path / 'transformer').mkdir()
    save_file(weights, str(path / 'transformer' / 'model.safetensors'),
              metadata={'format': 'pt'})


def _train_bpe(special_tokens: Sequence[str] = ()) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on the built-in corpus; special_tokens
    take the first ids, in order.
    """
    from tokenizers import decoders, normalizers, pre_tokenizers, Regex, Tokenizer
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(BPE(unk_token=None, continuing_subword_prefix='', end_of_word_suffix='',
                        fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=1024, show_progress=False, special_tokens=list(special_tokens),
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS.splitlines(), trainer)
    return bpe


def build_tokenizer() -> Any:
    """Train a byte-level BPE tokenizer on a small built-in corpus, with Qwen's added tokens.

    Returns:
        A transformers Qwen2Tokenizer (the tokenizer class of the real checkpoints).
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    trained = json.loads(_train_bpe().to_str())['model']
    merges = [tuple(m.split(' ', 1)) if isinstance(m, str) else tuple(m)
              for m in trained['merges']]
    tokenizer = Qwen2Tokenizer(vocab=trained['vocab'], merges=merges, eos_token='<|im_end|>',
                               pad_token='<|endoftext|>', unk_token=None,
                               model_max_length=32768)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
                         special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TEXT_TOKENS])
    return tokenizer


def build_edge_tokenizer() -> Any:
    """A byte-level BPE tokenizer laid out like Cosmos3-Edge's: the Nemotron-style control
    tokens at the ids the real config expects (EDGE_SPECIAL_TOKENS), think tags as text.

    Returns:
        A transformers fast tokenizer (TokenizersBackend).
    """
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(EDGE_SPECIAL_TOKENS), bos_token='<s>',
        eos_token='<|im_end|>', pad_token='<unk>', unk_token='<unk>', model_max_length=32768)
    # Already in the vocabulary (ids 0-21): this only marks which ones are control tokens.
    tokenizer.add_tokens([AddedToken(t, special=t not in TEXT_TOKENS, normalized=False)
                          for t in EDGE_SPECIAL_TOKENS])
    return tokenizer


def _build_processor(family: ModelFamily, tokenizer: Any) -> Any:
    from transformers import (
        Cosmos3EdgeImageProcessor,
        Cosmos3EdgeProcessor,
        Cosmos3EdgeVideoProcessor,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    # Pixel limits and normalisation as in the real preprocessor configs (Cosmos3-Edge: the
    # transformers 5.23 defaults of its processors).
    if family is ModelFamily.COSMOS3_EDGE:
        return Cosmos3EdgeProcessor(
            image_processor=Cosmos3EdgeImageProcessor(patch_size=16, merge_size=2),
            video_processor=Cosmos3EdgeVideoProcessor(patch_size=16, merge_size=2,
                                                      temporal_patch_size=1),
            tokenizer=tokenizer, chat_template=_COSMOS3_EDGE_CHAT_TEMPLATE)
    if family in (ModelFamily.QWEN3_VL, ModelFamily.COSMOS3_OMNI):
        half = [0.5, 0.5, 0.5]
        image_processor = Qwen2VLImageProcessor(
            patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=half, image_std=half,
            size={'shortest_edge': 65536, 'longest_edge': 16777216})
        video_processor = Qwen3VLVideoProcessor(
            patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=half, image_std=half,
            size={'shortest_edge': 4096, 'longest_edge': 25165824}, fps=2,
            do_sample_frames=True)
        return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                video_processor=video_processor,
                                chat_template=_QWEN3_VL_CHAT_TEMPLATE)
    image_processor = Qwen2VLImageProcessor(
        patch_size=14, temporal_patch_size=2, merge_size=2,
        size={'shortest_edge': 3136, 'longest_edge': 12845056})
    video_processor = Qwen2VLVideoProcessor(
        patch_size=14, temporal_patch_size=2, merge_size=2,
        size={'shortest_edge': 3136, 'longest_edge': 12845056})
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor,
                               chat_template=_QWEN2_5_VL_CHAT_TEMPLATE)


def _mrope_section(head_dim: int, family: ModelFamily) -> list[int]:
    """Split head_dim / 2 rotary frequencies over (t, h, w) in the real models' proportions."""
    half = head_dim // 2
    if family is not ModelFamily.QWEN2_5_VL:
        spatial = half * 20 // 64     # real: [24, 20, 20] of 64
        return [half - 2 * spatial, spatial, spatial]
    spatial = half * 24 // 64         # real: [16, 24, 24] of 64
    return [half - 2 * spatial, spatial, spatial]


def _build_config(family: ModelFamily, tokenizer: Any, head_dim: int) -> Any:
    from transformers import Cosmos3OmniConfig, Qwen2_5_VLConfig, Qwen3VLConfig

    if family is ModelFamily.COSMOS3_EDGE:
        return _build_edge_config(tokenizer, head_dim)

    vocab_size = -(-len(tokenizer) // 64) * 64
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
        ('vision_start_token_id', '<|vision_start|>'),
        ('vision_end_token_id', '<|vision_end|>'))}
    hidden = 4 * head_dim
    text = {
        'vocab_size': vocab_size, 'hidden_size': hidden, 'intermediate_size': 2 * hidden,
        'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
        'max_position_embeddings': 32768, 'rms_norm_eps': 1e-6, 'tie_word_embeddings': False,
    }
    vision = {
        'depth': 2, 'hidden_size': 2 * head_dim, 'num_heads': 2, 'intermediate_size': 4 * head_dim,
        'in_channels': 3, 'spatial_merge_size': 2, 'temporal_patch_size': 2,
        'out_hidden_size': hidden,
    }
    if family in (ModelFamily.QWEN3_VL, ModelFamily.COSMOS3_OMNI):
        text.update(head_dim=head_dim, rope_parameters={
            'rope_type': 'default', 'rope_theta': 5000000.0, 'mrope_interleaved': True,
            'mrope_section': _mrope_section(head_dim, family)})
        vision.update(patch_size=16, hidden_act='gelu_pytorch_tanh', num_position_embeddings=256,
                      deepstack_visual_indexes=[1])
        if family is ModelFamily.COSMOS3_OMNI:
            # The real config's token ids are those of the Qwen2 vocabulary (151655, ...);
            # set them to this tokenizer's.
            return Cosmos3OmniConfig(text_config={'model_type': 'qwen3_vl_text', **text},
                                     vision_config={'model_type': 'qwen3_vl_vision', **vision},
                                     tie_word_embeddings=False, **ids)
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                             **ids)
    text.update(bos_token_id=tokenizer.convert_tokens_to_ids('<|endoftext|>'),
                eos_token_id=tokenizer.convert_tokens_to_ids('<|im_end|>'),
                rope_parameters={'rope_type': 'default', 'rope_theta': 1000000.0,
                                 'mrope_section': _mrope_section(head_dim, family)})
    vision.update(patch_size=14, hidden_act='silu', window_size=112, fullatt_block_indexes=[1],
                  tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                            **ids)


def _build_edge_config(tokenizer: Any, head_dim: int) -> Any:
    """A few small layers of the real Cosmos3-Edge architecture (relu2 MLP, SigLIP2 vision
    tower with 16 px patches, 2x2 merge); the token ids are the real config's defaults, which
    the tokenizer matches.
    """
    from transformers import Cosmos3EdgeConfig

    hidden = 4 * head_dim
    text = {
        'vocab_size': -(-len(tokenizer) // 64) * 64, 'hidden_size': hidden,
        'intermediate_size': 2 * hidden, 'num_hidden_layers': 2, 'num_attention_heads': 4,
        'num_key_value_heads': 2, 'head_dim': head_dim, 'max_position_embeddings': 32768,
        'rope_parameters': {'rope_type': 'default', 'rope_theta': 100_000_000.0,
                            'mrope_section': _mrope_section(head_dim, ModelFamily.COSMOS3_EDGE)},
    }
    vision = {'hidden_size': 2 * head_dim, 'intermediate_size': 4 * head_dim,
              'num_hidden_layers': 2, 'num_attention_heads': 2, 'patch_size': 16,
              'num_patches': 256, 'spatial_merge_size': 2}
    config = Cosmos3EdgeConfig(text_config=text, vision_config=vision,
                               projector_hidden_size=2 * hidden, tie_word_embeddings=False)
    expected = {'image_token_id': '<|image_pad|>', 'video_token_id': '<|video_pad|>',
                'vision_start_token_id': '<|vision_start|>',
                'vision_end_token_id': '<|vision_end|>'}
    for field, token in expected.items():
        if getattr(config, field) != tokenizer.convert_tokens_to_ids(token):
            raise AssertionError(f'{field} {getattr(config, field)} is not the id of {token}')
    return config


def _model_class(family: ModelFamily) -> Any:
    import transformers

    from cosmos_reason_ros.core.answers.families import family_spec

    return getattr(transformers, family_spec(family).model_class)


def _silence_control_tokens(model: Any, tokenizer: Any, control_tokens: Sequence[str]) -> None:
    """Zero the output rows of the control tokens.

    Random weights would otherwise now and then end the answer at once with <|im_end|>; with a
    zero row its logit sits below the top-k of ordinary tokens, so generation almost always
    runs to max_new_tokens.
    """
    import torch

    ids = [tokenizer.convert_tokens_to_ids(t) for t in control_tokens]
    with torch.no_grad():
        model.get_output_embeddings().weight[ids] = 0.0


def _unprintable_ids(tokenizer: Any, control_tokens: Sequence[str],
                     end_ids: Sequence[int]) -> list[int]:
    """Ids of tokens that would put control characters or broken UTF-8 into the answer."""
    ids = []
    for token_id in range(len(tokenizer)):
        if token_id in end_ids:
            continue
        token = tokenizer.convert_ids_to_tokens(token_id)
        text = tokenizer.decode([token_id], skip_special_tokens=False)
        if (token in control_tokens or '\ufffd' in text
                or any(not c.isprintable() and c not in '\n\t' for c in text)):
            ids.append(token_id)
    return ids


def _generation_config(tokenizer: Any, family: ModelFamily,
                       control_tokens: Sequence[str]) -> Any:
    from transformers import GenerationConfig

    # The real checkpoints' generation_config.json with this tokenizer's ids, plus
    # suppress_tokens so that a random model still writes printable text (demos, logs).
    end_of_turn = tokenizer.convert_tokens_to_ids('<|im_end|>')
    if family is ModelFamily.COSMOS3_EDGE:
        bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
        eos = [end_of_turn]
    else:
        bos = pad = tokenizer.convert_tokens_to_ids('<|endoftext|>')
        eos = [end_of_turn, bos]
    return GenerationConfig(
        bos_token_id=bos, pad_token_id=pad, eos_token_id=eos, do_sample=True, temperature=0.7,
        top_p=0.8, top_k=20, repetition_penalty=1.0,
        suppress_tokens=_unprintable_ids(tokenizer, control_tokens, eos))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m cosmos_reason_ros.demo.tiny_model',
        description='Write a tiny random reasoner checkpoint of one family for tests and demos.')
    parser.add_argument('out_dir', help='directory to write the checkpoint to')
    parser.add_argument('--family', choices=[f.value for f in ModelFamily],
                        default=ModelFamily.QWEN3_VL.value,
                        help='qwen3_vl (Cosmos-Reason2 layout), qwen2_5_vl (Cosmos-Reason1), '
                             'cosmos3_edge (Cosmos3-Edge reasoner) or cosmos3_omni '
                             '(Cosmos3-Nano/Super reasoner)')
    parser.add_argument('--head-dim', type=int, default=16,
                        help='attention head size; vLLM needs at least 32 (default: 16)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a tiny checkpoint already in out_dir')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: build a checkpoint and print its directory."""
    args = _parse_args(argv)
    try:
        path = build_tiny_checkpoint(args.out_dir, ModelFamily(args.family), seed=args.seed,
                                     head_dim=args.head_dim, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(path)
    return 0


def checkpoint_summary(path: str | os.PathLike) -> tuple[str, int]:
    """Return (model_type, parameter count) of a checkpoint directory, for logs and tests."""
    from safetensors import safe_open

    config = json.loads((Path(path) / 'config.json').read_text())
    count = 0
    with safe_open(str(Path(path) / 'model.safetensors'), framework='numpy') as weights:
        for name in weights.keys():
            shape = weights.get_slice(name).get_shape()
            count += math.prod(shape)
    return config['model_type'], count


if __name__ == '__main__':
    sys.exit(main())

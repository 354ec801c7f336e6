"""Reuse of the vision encoder's output per temporal patch, for windows that slide over a stream.

Consecutive monitor ticks send windows that share most of their frames. The vision tower of every
supported family encodes each temporal patch (temporal_patch_size frames) without looking at the
other patches of the video, so a patch's features can be kept and reused, keyed by the patch's
processed pixels. Why that holds, from the code of transformers 5.23 (paths under
transformers/; the shared helpers are in vision_utils.py):

- Attention segments: `get_vision_cu_seqlens` (vision_utils.py:42-65) with merge_temporal=False,
  the default every family below uses, makes one segment of h*w rows per temporal patch, and the
  non-flash attention runs each segment on its own (qwen3_vl/modeling_qwen3_vl.py:295-316,
  cosmos3_edge/modeling_cosmos3_edge.py:484-505); flash attention takes the same cu_seqlens.
- Rotary positions: `get_vision_position_ids` (vision_utils.py:81-127) with include_temporal=False
  gives (h, w) indices repeated for each patch: the temporal index never enters them.
- Qwen3-VL (Cosmos-Reason2) and Cosmos3-Omni (Nano/Super, whose tower is a Qwen3VLVisionModel,
  cosmos3_omni/modeling_cosmos3_omni.py:104): qwen3_vl/modeling_qwen3_vl.py:665-719. The learned
  position embedding is interpolated from the position within one frame
  (`within = ... % (heights * widths)`, vision_utils.py:280), so it is the same for every
  patch; the Conv3d patch embedding (:85-102), the MLPs, the merger and the deepstack mergers
  (:166-179, :706-710) act on rows one by one. Deepstack features are cached with the patch.
- Qwen2.5-VL (Cosmos-Reason1): qwen2_5_vl/modeling_qwen2_5_vl.py:426-485. Window attention
  windows are built per temporal patch (`get_vision_window_index` loops over grid_t and pads
  each frame's grid separately, vision_utils.py:130-188); the full-attention blocks use the
  per-patch cu_seqlens above; the merger acts on groups of 4 rows of one window.
- Cosmos3-Edge: cosmos3_edge/modeling_cosmos3_edge.py:333-423 (SigLIP2 embeddings: a Linear per
  row, position embeddings resized per frame and repeated over t), :575-590 (encoder over the
  per-patch cu_seqlens), :737-755 (projector on groups of 4 rows). Its temporal patch is 1 frame.

So on every family the rows of one patch computed alone equal the same rows computed inside a
longer video; test/test_vision_cache.py checks it bit for bit on CPU in fp32. On a GPU the
matrix kernels may pick other tilings for another number of rows, so cached features can differ
from a full-video encoding in the last bits there (as batching does).

Vision towers outside VERIFIED_VISION_TOWERS (e.g. Qwen3-VL-MoE's, not tested here) get no cache.
"""

from collections import OrderedDict
from collections.abc import Callable
import dataclasses
import functools
import hashlib
import threading
import time
from typing import Any

import torch

VERIFIED_VISION_TOWERS = frozenset({
    'Qwen3VLVisionModel',                        # Cosmos-Reason2, Cosmos3-Omni
    'Qwen2_5_VisionTransformerPretrainedModel',  # Cosmos-Reason1
    'Cosmos3EdgeVisionModel',                    # Cosmos3-Edge
})
"""Class names of the vision towers whose per-patch features were shown independent of the other
patches (module docstring) and are tested so."""

DEFAULT_MAX_MB = 256
"""A sensible size when the cache is turned on: about two 32-frame windows of 2B-shape features
(fp32)."""


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """What the cache holds and how it was used since it was made (or cleared)."""

    hits: int
    """Temporal patches whose features came from the cache."""
    misses: int
    """Temporal patches that were encoded."""
    evictions: int
    """Entries dropped to stay within max_bytes."""
    entries: int
    bytes: int
    """Bytes of the features held (all tensors of all entries)."""
    max_bytes: int
    encode_seconds: float
    """Time spent in the vision tower for missed patches."""


class VisionFeatureCache:
    """Least-recently-used store of encoded temporal patches, bounded by bytes.

    Thread-safe; the backend uses it under its generation lock anyway.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024) -> None:
        """Make an empty cache.

        Args:
            max_bytes: Most bytes of features held; the least recently used entries go first.
                An entry larger than this is not kept.

        Raises:
            ValueError: max_bytes is not positive.
        """
        if max_bytes <= 0:
            raise ValueError(f'max_bytes must be positive, got {max_bytes}')
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[bytes, tuple[torch.Tensor, ...]] = OrderedDict()
        self._sizes: dict[bytes, int] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._encode_seconds = 0.0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> tuple[torch.Tensor, ...] | None:
        """The features stored under key (marking them recently used), or None; counts the
        hit or miss.
        """
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: bytes, value: tuple[torch.Tensor, ...]) -> None:
        """Store features under key, evicting the least recently used entries beyond max_bytes."""
        size = sum(t.numel() * t.element_size() for t in value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._bytes -= self._sizes.pop(key)
                del self._entries[key]
            self._entries[key] = value
            self._sizes[key] = size
            self._bytes += size
            while self._bytes > self.max_bytes:
                old, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
                self._evictions += 1

    def add_encode_time(self, seconds: float) -> None:
        """Account time spent encoding missed patches."""
        with self._lock:
            self._encode_seconds += seconds

    def clear(self) -> None:
        """Drop every entry and reset the counters (frees the features' memory)."""
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._bytes = 0
            self._hits = self._misses = self._evictions = 0
            self._encode_seconds = 0.0

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses, evictions=self._evictions,
                              entries=len(self._entries), bytes=self._bytes,
                              max_bytes=self.max_bytes, encode_seconds=self._encode_seconds)


def unsupported_reason(model: Any) -> str | None:
    """Why a loaded model's video features cannot be cached, or None when they can.

    Args:
        model: A transformers ...ForConditionalGeneration of a supported family.
    """
    base = getattr(model, 'base_model', None)
    visual = getattr(base, 'visual', None)
    if visual is None or not callable(getattr(base, 'get_video_features', None)):
        return f'{type(model).__name__} has no vision tower with get_video_features'
    name = type(visual).__name__
    if name not in VERIFIED_VISION_TOWERS:
        verified = ', '.join(sorted(VERIFIED_VISION_TOWERS))
        return (f'vision tower {name} is not among those whose per-patch features were checked '
                f'to be independent of the other frames ({verified})')
    return None


def install(model: Any, cache: VisionFeatureCache, *, namespace: str) -> Callable[[], None]:
    """Route the model's video encoding through the cache.

    generate() encodes media once before prefill through `base_model.get_video_features` (the
    model's own hook for precomputed features, generation/utils.py
    `_prepare_multimodal_encoder_kwargs_for_generation`), and forward() calls the same method;
    an instance attribute that wraps it changes nothing else of generate() (streaming, stopping
    criteria, logits processors).

    Args:
        model: The loaded model; unsupported_reason(model) must be None.
        cache: Where the features live.
        namespace: What else the features depend on besides the pixels: the model id; the
            vision dtype and device are added here.

    Returns:
        A function that restores the model's own encoding.

    Raises:
        ValueError: the model is not supported (unsupported_reason says why).
    """
    reason = unsupported_reason(model)
    if reason is not None:
        raise ValueError(reason)
    base = model.base_model
    original = base.get_video_features
    visual = base.visual
    merge = int(visual.spatial_merge_size) ** 2
    prefix = f'{namespace}|{visual.dtype}|{visual.device}|'.encode()
    output_type: list[type] = []

    @functools.wraps(original)
    def get_video_features(pixel_values_videos: torch.Tensor,
                           video_grid_thw: torch.Tensor | None = None, **kwargs: Any) -> Any:
        # Anything beyond return_dict (precomputed cu_seqlens, output_attentions, ...) asks for
        # more than pooled features: leave that to the model.
        if video_grid_thw is None or set(kwargs) - {'return_dict'}:
            return original(pixel_values_videos, video_grid_thw, **kwargs)
        return _cached_features(original, cache, prefix, merge, output_type,
                                pixel_values_videos, video_grid_thw)

    base.get_video_features = get_video_features

    def uninstall() -> None:
        if base.__dict__.get('get_video_features') is get_video_features:
            del base.get_video_features

    return uninstall


def patch_key(prefix: bytes, height: int, width: int, rows: torch.Tensor) -> bytes:
    """Cache key of one temporal patch: its processed pixel rows and its grid size.

    Args:
        prefix: Model id, vision dtype and device.
        height: Patch rows of the grid.
        width: Patch columns of the grid.
        rows: The processor's pixel_values rows of the patch (height * width of them).
    """
    digest = hashlib.blake2b(prefix, digest_size=20)
    digest.update(f'{height}x{width}|{rows.dtype}|{tuple(rows.shape)}|'.encode())
    data = rows.detach().contiguous()
    if data.device.type != 'cpu':
        data = data.cpu()
    digest.update(data.view(torch.uint8).numpy().data)
    return digest.digest()


def _cached_features(original: Callable[..., Any], cache: VisionFeatureCache, prefix: bytes,
                     merge: int, output_type: list[type], pixels: torch.Tensor,
                     grid: torch.Tensor) -> Any:
    """get_video_features with every temporal patch looked up first and only the misses
    encoded (together, as one video per grid size: equal to encoding them one by one).
    """
    pooled: list[torch.Tensor] = []
    deepstack: list[list[torch.Tensor]] = []
    offset = 0
    for t, h, w in grid.tolist():
        rows = h * w
        keys = [patch_key(prefix, h, w, pixels[offset + i * rows:offset + (i + 1) * rows])
                for i in range(t)]
        found = [cache.get(key) for key in keys]
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            encoded = _encode(original, cache, output_type, pixels, offset, rows, missing, h, w,
                              merge)
            for i, value in zip(missing, encoded):
                found[i] = value
                cache.put(keys[i], value)
        pooled.append(torch.cat([value[0] for value in found]))
        layers = len(found[0]) - 1
        deepstack.append([torch.cat([value[1 + k] for value in found]) for k in range(layers)])
        offset += t * rows
    if not output_type:
        # Every patch hit before this process ever encoded one: cannot happen, the cache is
        # filled only through this function; encode as the model would.
        return original(pixels, grid, return_dict=True)
    fields: dict[str, Any] = {'pooler_output': tuple(pooled)}
    if 'deepstack_features' in output_type[0].__dataclass_fields__:
        layers = len(deepstack[0])
        fields['deepstack_features'] = [tuple(video[k] for video in deepstack)
                                        for k in range(layers)]
    return output_type[0](**fields)


def _encode(original: Callable[..., Any], cache: VisionFeatureCache, output_type: list[type],
            pixels: torch.Tensor, offset: int, rows: int, missing: list[int], h: int, w: int,
            merge: int) -> list[tuple[torch.Tensor, ...]]:
    """Encode the missing patches of one video; per patch: (pooled, *deepstack) rows."""
    batch = torch.cat([pixels[offset + i * rows:offset + (i + 1) * rows] for i in missing])
    grid = torch.tensor([[len(missing), h, w]], device=pixels.device, dtype=torch.long)
    started = time.perf_counter()
    output = original(batch, grid, return_dict=True)
    if pixels.device.type == 'cuda':
        torch.cuda.synchronize(pixels.device)
    cache.add_encode_time(time.perf_counter() - started)
    if not output_type:
        output_type.append(type(output))
    tokens = rows // merge
    tensors = [output.pooler_output[0]]
    tensors += [feature[0] for feature in (getattr(output, 'deepstack_features', None) or [])]
    # Clones: a view would keep the whole batch alive and the byte count would lie.
    return [tuple(t[j * tokens:(j + 1) * tokens].clone() for t in tensors)
            for j in range(len(missing))]

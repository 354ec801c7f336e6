"""Local backend: a Cosmos reasoner checkpoint (any family of answers.families) run in-process.

Sends the window's frames with their real timing, streams tokens and stops on cancellation.
"""

from collections.abc import Sequence
import dataclasses
import gc
import importlib.util
import os
import threading
import time
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    LogitsProcessorList,
    StoppingCriteriaList,
)

from cosmos_reason_ros.core.answers.families import (
    family_for_model_type,
    family_spec,
    ReasoningPrompt,
    supported_families,
    video_timing,
)
from cosmos_reason_ros.core.answers.formats import AnswerBudgetError, framing_tokens, plan_answer
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.answers.prompts import view_label
from cosmos_reason_ros.core.backends.base import (
    check_request,
    GenerationRequest,
    GenerationResult,
    RequestView,
    Sampling,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.grammar import (
    AnswerConstraint,
    ConstraintError,
    GrammarCompiler,
)
from cosmos_reason_ros.core.backends.transformers_streaming import (
    CancelCriteria,
    Decoder,
    TextStreamer,
)
from cosmos_reason_ros.core.backends.vision_cache import (
    CacheStats,
    install,
    unsupported_reason,
    VisionFeatureCache,
)
from cosmos_reason_ros.core.camera.images import downscale
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    LoadStopped,
    ModelLoadError,
)

DEFAULT_MAX_FRAME_PIXELS = 1920 * 1088
"""Safety bound on the pixels of one frame as the model sees it. The frame window already
downscales frames to its budget, so this only bites when a caller sends camera-size frames."""

CACHE_IMPLEMENTATIONS = ('dynamic', 'static')
"""KV caches generate() may use: dynamic (grows per token) or static (preallocated)."""

_DTYPES = {
    'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16,
    'fp16': torch.float16, 'float16': torch.float16, 'half': torch.float16,
    'fp32': torch.float32, 'float32': torch.float32, 'float': torch.float32,
}


@dataclasses.dataclass
class PreparedInputs:
    """A request turned into model inputs: what the preprocess step hands to generation."""

    inputs: dict[str, Any]
    """Processor output on the model's device (input_ids, pixel values, grids, ...)."""
    prompt_text: str
    """The chat-templated prompt before the processor expanded the media placeholders."""
    model_input_size: tuple[int, int]
    """(width, height) of the frames after the processor's resize (the first view's)."""
    view_input_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) of each view after the processor's resize, in request order (several
    views only)."""

    @property
    def prompt_tokens(self) -> int:
        """Length of the prompt in tokens, media placeholders included."""
        return int(self.inputs['input_ids'].shape[-1])


class TransformersBackend:
    """Runs a Cosmos reasoner checkpoint (Reason1, Reason2, Cosmos3-Edge, Cosmos3-Nano/Super)
    with transformers.

    Construction is cheap; load() reads the checkpoint. generate() calls are serialized by a
    lock, so one instance may be shared between threads.

    Attributes:
        model_id: The configured hub id or local directory.
        family: The checkpoint's family, known after load() (None before).
        device: Where the model runs ('cuda:0', 'cpu'); the configured value before load().
        dtype: Weight dtype ('bfloat16', ... or the quantization); the configured value before
            load().
    """

    def __init__(self, config: ModelConfig, *,
                 max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> None:
        """Remember the settings; nothing is loaded yet.

        Args:
            config: Which checkpoint to load and how.
            max_frame_pixels: Most pixels of one frame after the processor's resize; larger
                frames are scaled down (aspect kept).
        """
        self.config = config
        self.model_id = config.model
        self.family: ModelFamily | None = None
        self.device = config.device
        self.dtype = config.dtype if config.quantization in ('', 'none') else config.quantization
        self._max_frame_pixels = max_frame_pixels
        self._model: Any = None
        self._processor: Any = None
        self._eos_ids: tuple[int, ...] = ()
        self._grammars: GrammarCompiler | None = None
        self._decoder: Decoder | None = None
        self._vision_cache: VisionFeatureCache | None = None
        self._uninstall_vision_cache: Any = None
        self.vision_cache_note = ''
        """Why the vision cache is off although vision_cache_mb asked for it; empty otherwise."""
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether load() succeeded and close() has not been called since."""
        return self._model is not None

    def describe(self) -> str:
        """One line for logs and diagnostics: model, family, device, dtype, attention."""
        family = self.family.value if self.family else 'not loaded'
        text = (f'{self.model_id} ({family}) on {self.device}, {self.dtype}, '
                f'attention {self.config.attn_implementation or "default"}')
        if self._vision_cache is not None:
            text += f', vision cache {self.config.vision_cache_mb} MB'
        return text

    @property
    def vision_cache_stats(self) -> CacheStats | None:
        """Counters of the encoded-frame cache, or None while it is off."""
        cache = self._vision_cache
        return cache.stats() if cache is not None else None

    # ---------------------------------------------------------------------------------------
    # Loading

    def load(self, stop: threading.Event | None = None) -> None:
        """Load the processor and the weights; a second call does nothing.

        The checkpoint is read without holding the generation lock (close() and generate()
        never wait for a load); the loaded model is swapped in under it at the end.

        Args:
            stop: set it to stop the load; it is checked between stages (settings, config,
                processor, weights), and a model loaded after it was set is thrown away.

        Raises:
            LoadStopped: stop was set before the load finished.
            ModelLoadError: the checkpoint, device, dtype or quantization setting cannot be
                used; the message names the model and the setting to change.
        """
        if self._model is not None:
            return
        stop = stop or threading.Event()
        source = self._checkpoint_source()
        if self.config.cache_implementation not in CACHE_IMPLEMENTATIONS:
            raise ModelLoadError(
                f"unknown cache_implementation '{self.config.cache_implementation}': use "
                + ' or '.join(CACHE_IMPLEMENTATIONS))
        if self.config.vision_cache_mb < 0:
            raise ModelLoadError(f'vision_cache_mb is {self.config.vision_cache_mb}: set it to 0 '
                                 '(off) or a size in megabytes')
        device = self._resolve_device()
        dtype = self._resolve_dtype(device)
        quantization = self._quantization_config(device, dtype)
        hub = self._hub_kwargs()
        _check_stop(stop, self.model_id)
        checkpoint_config = self._load_checkpoint_config(source, hub)
        try:
            family = family_for_model_type(checkpoint_config.model_type)
        except ValueError as exc:
            raise ModelLoadError(f"cannot serve '{self.model_id}': {exc}") from None
        _check_stop(stop, self.model_id)
        processor = self._load_processor(source, hub)
        _check_stop(stop, self.model_id)
        model = self._load_model(source, hub, checkpoint_config, device, dtype, quantization)
        model.eval()
        with self._lock:
            if stop.is_set() or self._model is not None:
                del model
                _free_memory(device)
                _check_stop(stop, self.model_id)
                return
            self._model = model
            self._processor = processor
            self._eos_ids = _as_tuple(model.generation_config.eos_token_id)
            self._decoder = Decoder(processor.tokenizer)
            self._grammars = GrammarCompiler(
                processor.tokenizer, vocab_size=model.get_output_embeddings().weight.shape[0],
                stop_token_ids=self._eos_ids)
            self.family = family
            self._start_vision_cache(model)
            self.device = str(model.device)
            self.dtype = (self.config.quantization if quantization is not None
                          else str(model.dtype).replace('torch.', ''))

    def _start_vision_cache(self, model: Any) -> None:
        """Route video encoding through a VisionFeatureCache when vision_cache_mb asks for one
        and the model's vision tower is one whose per-patch features are exact to reuse.
        """
        megabytes = self.config.vision_cache_mb
        if megabytes <= 0:
            return
        reason = unsupported_reason(model)
        if reason is not None:
            self.vision_cache_note = f'vision cache off: {reason}'
            return
        cache = VisionFeatureCache(megabytes * 1024 * 1024)
        self._uninstall_vision_cache = install(model, cache, namespace=self.model_id)
        self._vision_cache = cache

    def _checkpoint_source(self) -> str:
        model = self.config.model.strip()
        if not model:
            raise ModelLoadError('no model configured: set model to a hub id (e.g. '
                                 'nvidia/Cosmos-Reason2-2B) or a local checkpoint directory')
        path = os.path.expanduser(model)
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise ModelLoadError(f"model path '{model}' is a file: set model to the "
                                     'checkpoint directory (the one holding config.json)')
            if not os.path.isfile(os.path.join(path, 'config.json')):
                if os.path.isfile(os.path.join(path, 'model_index.json')):
                    raise ModelLoadError(
                        f"model path '{model}' is a diffusers pipeline (model_index.json, e.g. a "
                        'Cosmos generator), not a reasoner: set model to a reasoner checkpoint; '
                        f'supported are {supported_families()}')
                raise ModelLoadError(f"model path '{model}' holds no config.json: set model to a "
                                     'checkpoint directory (the one holding config.json)')
            return path
        if _looks_like_path(model):
            raise ModelLoadError(f"model path '{model}' does not exist: set model to a hub id or "
                                 'a local checkpoint directory')
        return model

    def _resolve_device(self) -> str:
        wanted = (self.config.device or 'auto').strip().lower()
        has_cuda = torch.cuda.is_available()
        if wanted == 'auto':
            return 'cuda' if has_cuda else 'cpu'
        if wanted == 'cpu':
            return 'cpu'
        if wanted == 'cuda' or wanted.startswith('cuda:'):
            if not has_cuda:
                raise ModelLoadError(
                    f"device '{wanted}' requested for '{self.model_id}' but CUDA is not available "
                    f'(torch {torch.__version__}): set device to cpu or auto, or check the GPU '
                    'driver')
            index = wanted.partition(':')[2]
            if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
                raise ModelLoadError(
                    f"device '{wanted}' does not exist: this machine has "
                    f'{torch.cuda.device_count()} GPU(s); use cuda:0 .. '
                    f'cuda:{torch.cuda.device_count() - 1}')
            return wanted
        raise ModelLoadError(f"unknown device '{self.config.device}': use auto, cuda, cuda:N "
                             'or cpu')

    def _resolve_dtype(self, device: str) -> torch.dtype:
        wanted = (self.config.dtype or 'auto').strip().lower()
        if wanted == 'auto':
            if device.startswith('cuda'):
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        try:
            return _DTYPES[wanted]
        except KeyError:
            raise ModelLoadError(f"unknown dtype '{self.config.dtype}': use auto, bf16, fp16 "
                                 'or fp32') from None

    def _quantization_config(self, device: str, dtype: torch.dtype) -> Any:
        mode = (self.config.quantization or 'none').strip().lower()
        if mode == 'none':
            return None
        if mode not in ('4bit', '8bit'):
            raise ModelLoadError(f"unknown quantization '{self.config.quantization}': use none, "
                                 '4bit or 8bit')
        if not device.startswith('cuda'):
            reason = ('CUDA is not available' if not torch.cuda.is_available()
                      else f"device is '{device}'")
            raise ModelLoadError(
                f"quantization '{mode}' needs a CUDA GPU (bitsandbytes) but {reason}: set "
                'quantization to none, or run on a machine with a CUDA GPU and device cuda')
        if importlib.util.find_spec('bitsandbytes') is None:
            raise ModelLoadError(f"quantization '{mode}' needs bitsandbytes: pip install "
                                 "bitsandbytes, or set quantization to none")
        from transformers import BitsAndBytesConfig

        # The vision tower is small and sensitive to quantization error; keep it and the
        # output head in the compute dtype.
        skip = ['visual', 'lm_head']
        if mode == '4bit':
            return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4',
                                      bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=skip)
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)

    def _hub_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {'local_files_only': self.config.local_files_only}
        if self.config.revision:
            kwargs['revision'] = self.config.revision
        return kwargs

    def _load_checkpoint_config(self, source: str, hub: dict[str, Any]) -> Any:
        try:
            return AutoConfig.from_pretrained(source, **hub)
        except ValueError as exc:
            # AutoConfig raises ValueError for a model_type it does not know.
            raise ModelLoadError(
                f"cannot read the config of '{self.model_id}': {exc}; supported are "
                f'{supported_families()}; or upgrade transformers') from exc
        except Exception as exc:
            raise ModelLoadError(self._fetch_failure(exc)) from exc

    def _fetch_failure(self, exc: Exception) -> str:
        revision = f" at revision '{self.config.revision}'" if self.config.revision else ''
        path = os.path.expanduser(self.config.model.strip())
        if os.path.isdir(path):
            # A local directory: nothing to download under that name, its files are the fault.
            return (f"could not load the checkpoint in '{path}': {_one_line(exc)}. Fix: its "
                    'files are incomplete or corrupt (an interrupted copy or download?): copy '
                    'the checkpoint again, e.g. hf download <hub id> --local-dir '
                    f"'{path}'")
        if self.config.local_files_only:
            fix = ('local_files_only is set, so it must be in the local Hugging Face cache: '
                   f'download it first (hf download {self.model_id}) or set model to a local '
                   'checkpoint directory')
        else:
            fix = ('check the hub id, network access to huggingface.co and that HF_TOKEN grants '
                   'access (the Cosmos models are gated: accept the licence on the model page), '
                   'or set model to a local checkpoint directory')
        return f"could not load '{self.model_id}'{revision}: {_one_line(exc)}. Fix: {fix}"

    def _load_processor(self, source: str, hub: dict[str, Any]) -> Any:
        fix = ('Fix: the checkpoint needs its tokenizer and preprocessor files (tokenizer.json, '
               'preprocessor_config.json or processor_config.json) next to config.json')
        try:
            processor = AutoProcessor.from_pretrained(source, **hub)
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the processor of '{self.model_id}': {exc}. {fix}") from exc
        try:
            check_processor(processor)
        except Exception as exc:
            raise ModelLoadError(
                f"the processor of '{self.model_id}' failed a dry run ({_one_line(exc)}): "
                f'every goal would fail. {fix}') from None
        return processor

    def _load_model(self, source: str, hub: dict[str, Any], checkpoint_config: Any, device: str,
                    dtype: torch.dtype, quantization: Any) -> Any:
        kwargs: dict[str, Any] = dict(hub, config=checkpoint_config, dtype=dtype)
        if self.config.attn_implementation:
            kwargs['attn_implementation'] = self.config.attn_implementation
        if quantization is not None:
            kwargs['quantization_config'] = quantization
        if device != 'cpu':
            kwargs['device_map'] = {'': device}
        try:
            return AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelLoadError(
                f"out of GPU memory loading '{self.model_id}' as {dtype}: use quantization 4bit "
                'or 8bit, a smaller model (Cosmos-Reason2-2B), or free the GPU') from exc
        except ImportError as exc:
            raise ModelLoadError(
                f"could not load '{self.model_id}': {exc}. Fix: install the missing package, or "
                "set attn_implementation to sdpa if flash-attn is the one missing") from exc
        except Exception as exc:
            if self.config.attn_implementation and 'attn' in str(exc).lower():
                raise ModelLoadError(
                    f"could not load '{self.model_id}' with attn_implementation "
                    f"'{self.config.attn_implementation}': {exc}. Fix: set attn_implementation to "
                    'sdpa or eager') from exc
            raise ModelLoadError(self._fetch_failure(exc)) from exc

    def server_status(self) -> None:
        """No server: the model runs in this process."""
        return None

    def check_server(self) -> None:
        """No server to check: the model runs in this process."""
        return None

    def close(self) -> None:
        """Free the model and the processor, and the GPU cache. load() may be called again.

        Waits for a running generate() (cancel it first); never for a load.
        """
        with self._lock:
            device = self.device
            if self._vision_cache is not None:
                self._uninstall_vision_cache()
                self._vision_cache.clear()
            self._vision_cache = None
            self._uninstall_vision_cache = None
            self._model = None
            self._processor = None
            self._decoder = None
            self._grammars = None
            self.family = None
            _free_memory(device)

    @property
    def can_constrain(self) -> bool:
        """Whether answers can be constrained to their format: the grammar library imports."""
        return importlib.util.find_spec('xgrammar') is not None

    # ---------------------------------------------------------------------------------------
    # Generation: check -> preprocess -> forward -> postprocess

    def generate(self, request: GenerationRequest, *, on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """Answer one request, streaming text to on_text while generating.

        Args:
            request: Prompt, frames (one: an image; several: a video) and sampling.
            on_text: Called with (new text, tokens so far) whenever decoded text grows.
            cancel: When set, generation stops within one decoding step.

        Returns:
            The generated text (special tokens removed, <think> tags kept), token counts and
            timings.

        Raises:
            InvalidRequestError: no frames, frames of mixed sizes, or timestamps that do not
                match the frames.
            GenerationCancelled: cancel was set.
            GenerationError: the model is not loaded or failed; the message says why.
        """
        with self._lock:
            if self._model is None:
                raise GenerationError(f"model '{self.model_id}' is not loaded: call load() first")
            check_request(request)
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    prepared = self.preprocess(request)
                    preprocess_time = time.perf_counter() - started
                    check_context(prepared.prompt_tokens, request.sampling.max_new_tokens,
                                  context_length(self._model.config))
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled('cancelled before generation started')
                    constraint, warnings = self._constraint(request, prepared)
                    output = self._forward(prepared, request.sampling, on_text, cancel,
                                           constraint)
            except (GenerationCancelled, InvalidRequestError):
                raise
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                raise GenerationError(
                    f"out of GPU memory for {_frames_in(request)}: lower the window's "
                    "max_pixels or the goal's max_frames (or max_new_tokens"
                    + (', or ask about fewer cameras)' if request.views else ')')) from exc
            except Exception as exc:
                raise GenerationError(f'generation failed: {type(exc).__name__}: {exc}') from exc
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(
                    f'cancelled after {len(output.token_ids)} generated token(s)')
            result = self._postprocess(prepared, output, request.sampling, preprocess_time)
            if constraint is None:
                return dataclasses.replace(result, warnings=warnings)
            return dataclasses.replace(result, constrained=True,
                                       reasoning_cut=constraint.reasoning_cut,
                                       answer_format=constraint.answer_format)

    def preprocess(self, request: GenerationRequest) -> PreparedInputs:
        """Turn a request into model inputs: chat template, processor, move to the device.

        Public so that tests and diagnostics can see exactly what the model receives.

        Raises:
            GenerationError: the model is not loaded.
        """
        if self._processor is None or self.family is None:
            raise GenerationError(f"model '{self.model_id}' is not loaded: call load() first")
        is_video = len(request.frames) > 1
        messages = build_messages(request, is_video=is_video)
        template_kwargs = {}
        if family_spec(self.family).thinking_switch:
            # Explicit both ways: Cosmos3-Edge's template thinks unless told not to.
            template_kwargs['enable_thinking'] = request.prompt.reasoning
        prompt_text = self._processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **template_kwargs)
        if request.views:
            inputs, sizes = self._process_views(prompt_text, request.views)
            inputs = inputs.to(self._model.device)
            return PreparedInputs(inputs=dict(inputs), prompt_text=prompt_text,
                                  model_input_size=sizes[0], view_input_sizes=sizes)
        if is_video:
            inputs = self._process_video(prompt_text, request)
            grid = inputs['video_grid_thw'][0]
            patch_size = self._processor.video_processor.patch_size
        else:
            inputs = self._process_image(prompt_text, request)
            grid = inputs['image_grid_thw'][0]
            patch_size = self._processor.image_processor.patch_size
        model_input_size = (int(grid[2]) * patch_size, int(grid[1]) * patch_size)
        inputs = inputs.to(self._model.device)
        return PreparedInputs(inputs=dict(inputs), prompt_text=prompt_text,
                              model_input_size=model_input_size)

    # return_mm_token_type_ids: the multimodal rotary positions need them; the Qwen processors
    # return them by default, Cosmos3-Edge's (5.23) only when asked.

    def _process_image(self, prompt_text: str, request: GenerationRequest) -> Any:
        processor = self._processor.image_processor
        size = self._pixel_bounds(request.frames[0].shape, 1, processor.patch_size,
                                  processor.merge_size, processor.temporal_patch_size,
                                  total=False)
        # A copy: window frames are read-only, and torch.from_numpy warns on those.
        return self._processor(text=[prompt_text], images=[np.array(request.frames[0])],
                               images_kwargs={'size': size}, return_tensors='pt',
                               return_mm_token_type_ids=True)

    def _process_video(self, prompt_text: str, request: GenerationRequest) -> Any:
        processor = self._processor.video_processor
        video = np.stack([np.asarray(frame) for frame in request.frames])
        # Qwen3-VL's and Cosmos3-Edge's video processors bound the pixels of all frames
        # together, Qwen2-VL's (used by Qwen2.5-VL) those of each frame.
        size = self._pixel_bounds(video.shape[1:], len(video), processor.patch_size,
                                  processor.merge_size, processor.temporal_patch_size,
                                  total=family_spec(self.family).pixel_budget_is_total)
        videos_kwargs = {
            'do_sample_frames': False,
            'video_metadata': [video_metadata(request.timestamps, self.family,
                                              width=video.shape[2], height=video.shape[1])],
            'size': size,
            # The processor writes the `<t seconds>` markers from the metadata its video
            # processor returns; Qwen3-VL's asks for it by default, Cosmos3-Edge's (5.23) not.
            'return_metadata': True,
        }
        if 'cap_pixels_per_frame' in getattr(processor.valid_kwargs, '__annotations__', {}):
            # The frame window already chose the pixel budget; also silences a warning.
            videos_kwargs['cap_pixels_per_frame'] = False
        inputs = self._processor(text=[prompt_text], videos=[video],
                                 videos_kwargs=videos_kwargs, return_tensors='pt',
                                 return_mm_token_type_ids=True)
        inputs.pop('video_metadata', None)  # for the prompt only, not a model input
        return inputs

    def _process_views(self, prompt_text: str, views: Sequence[RequestView]
                       ) -> tuple[Any, tuple[tuple[int, int], ...]]:
        """Processor inputs of several cameras: a video per view (an image for one frame), in
        prompt order, and each view's (width, height) as the model sees it.

        Each video carries its own timing on the request's shared clock (origin 0.0: a view
        whose first frame is 0.007 s says so in its `<t seconds>` markers). The processor
        takes one size bound per modality, so the bound is the widest view's: each view is
        then only rounded to whole tokens, none scaled up or cut. Frames above
        max_frame_pixels are scaled down here first, since the widest bound would let them
        through.
        """
        views = [RequestView(view.name, [self._bounded(frame) for frame in view.frames],
                             view.timestamps) for view in views]
        images = [view for view in views if len(view.frames) == 1]
        videos = [view for view in views if len(view.frames) > 1]
        kwargs: dict[str, Any] = {}
        if images:
            processor = self._processor.image_processor
            bounds = [self._pixel_bounds(view.frames[0].shape, 1, processor.patch_size,
                                         processor.merge_size, processor.temporal_patch_size,
                                         total=False) for view in images]
            kwargs['images'] = [np.array(view.frames[0]) for view in images]
            kwargs['images_kwargs'] = {'size': _widest(bounds)}
        if videos:
            processor = self._processor.video_processor
            total = family_spec(self.family).pixel_budget_is_total
            stacks = [np.stack([np.asarray(frame) for frame in view.frames]) for view in videos]
            bounds = [self._pixel_bounds(stack.shape[1:], len(stack), processor.patch_size,
                                         processor.merge_size, processor.temporal_patch_size,
                                         total=total) for stack in stacks]
            metadata = [video_metadata(view.timestamps, self.family, width=stack.shape[2],
                                       height=stack.shape[1], origin=0.0)
                        for view, stack in zip(videos, stacks)]
            videos_kwargs = {'do_sample_frames': False, 'video_metadata': metadata,
                             'size': _widest(bounds), 'return_metadata': True}
            if 'cap_pixels_per_frame' in getattr(processor.valid_kwargs, '__annotations__', {}):
                videos_kwargs['cap_pixels_per_frame'] = False
            kwargs['videos'] = stacks
            kwargs['videos_kwargs'] = videos_kwargs
        inputs = self._processor(text=[prompt_text], **kwargs, return_tensors='pt',
                                 return_mm_token_type_ids=True)
        inputs.pop('video_metadata', None)
        # The processor keeps images and videos in their own order; put them back in the
        # views' order.
        grids = {
            'image': iter(zip(inputs['image_grid_thw'].tolist(),
                              [self._processor.image_processor.patch_size] * len(images)))
            if images else iter(()),
            'video': iter(zip(inputs['video_grid_thw'].tolist(),
                              [self._processor.video_processor.patch_size] * len(videos)))
            if videos else iter(()),
        }
        sizes = []
        for view in views:
            (_, grid_h, grid_w), patch = next(grids['image' if len(view.frames) == 1
                                                    else 'video'])
            sizes.append((int(grid_w) * patch, int(grid_h) * patch))
        return inputs, tuple(sizes)

    def _bounded(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape[0] * frame.shape[1] <= self._max_frame_pixels:
            return frame
        return downscale(frame, self._max_frame_pixels)

    def _pixel_bounds(self, frame_shape: Sequence[int], num_frames: int, patch_size: int,
                      merge_size: int, temporal_patch_size: int, *, total: bool) -> dict[str, int]:
        """Processor size bounds that allow no resize beyond rounding to whole tokens.

        The frames come already downscaled to the window's budget; the processor's own
        defaults would scale small frames up and its budgets differ per checkpoint.
        """
        factor = patch_size * merge_size
        height, width = int(frame_shape[0]), int(frame_shape[1])
        rounded = max(factor, round(height / factor) * factor) * max(
            factor, round(width / factor) * factor)
        per_frame = min(rounded, max(self._max_frame_pixels, factor * factor))
        if not total:
            return {'shortest_edge': factor * factor, 'longest_edge': per_frame}
        # The processor compares the pixels of the frames rounded to whole temporal patches.
        padded_frames = round(num_frames / temporal_patch_size) * temporal_patch_size
        frames = max(num_frames, padded_frames)
        return {'shortest_edge': factor * factor, 'longest_edge': frames * per_frame}

    def _constraint(self, request: GenerationRequest, prepared: PreparedInputs
                    ) -> tuple[AnswerConstraint | None, tuple[str, ...]]:
        """The grammar for the request's answer, or None and why not.

        Raises:
            AnswerBudgetError: max_new_tokens cannot hold a complete answer.
        """
        structured = request.structured
        if structured is None:
            return None, ()
        reasoning = request.prompt.reasoning
        shape = constraint_shape(self.family, reasoning=reasoning)
        try:
            # Unavailable first: a goal the grammar could not have held is not refused for
            # its budget.
            self._grammars.check_available()
            plan = plan_answer(structured, max_new_tokens=request.sampling.max_new_tokens,
                               reasoning=reasoning, framing=framing_tokens(**shape),
                               family=self.family,
                               model_input_size=_largest(prepared.view_input_sizes)
                               or prepared.model_input_size)
            if plan is None:
                return None, ()
            return self._grammars.constraint(plan, **shape), ()
        except AnswerBudgetError:
            raise
        except (ConstraintError, InvalidRequestError) as error:
            return None, (f'the answer was not constrained to its format: {error}',)

    def _forward(self, prepared: PreparedInputs, sampling: Sampling,
                 on_text: StreamCallback | None, cancel: threading.Event | None,
                 constraint: AnswerConstraint | None = None) -> '_Output':
        streamer = TextStreamer(self._decoder, on_text)
        stopping = StoppingCriteriaList([CancelCriteria(cancel)] if cancel is not None else [])
        generate_kwargs = generation_kwargs(sampling)
        if constraint is not None:
            generate_kwargs['logits_processor'] = LogitsProcessorList([constraint])
        if self.config.cache_implementation == 'static':
            # A fixed-size cache lets generate() compile the decoding step (CUDA only).
            generate_kwargs['cache_implementation'] = 'static'
        if sampling.seed is not None and not sampling.greedy:
            # generate() takes no torch.Generator; the global seed is safe under the lock.
            torch.manual_seed(sampling.seed)
        started = time.perf_counter()
        sequences = self._model.generate(**prepared.inputs, **generate_kwargs, streamer=streamer,
                                         stopping_criteria=stopping)
        finished = time.perf_counter()
        new_ids = sequences[0, prepared.prompt_tokens:].tolist()
        first = streamer.first_token_time
        return _Output(
            token_ids=new_ids,
            time_to_first_token=(first - started) if first is not None else finished - started,
            generation_time=finished - started,
        )

    def _postprocess(self, prepared: PreparedInputs, output: '_Output', sampling: Sampling,
                     preprocess_time: float) -> GenerationResult:
        token_ids = output.token_ids
        text = self._decoder.decode(token_ids)
        if token_ids and token_ids[-1] in self._eos_ids:
            finish_reason = 'stop'
        elif len(token_ids) >= sampling.max_new_tokens:
            finish_reason = 'length'
        else:
            finish_reason = 'stop'
        return GenerationResult(
            text=text,
            reasoning=None,
            prompt_tokens=prepared.prompt_tokens,
            completion_tokens=len(token_ids),
            preprocess_time=preprocess_time,
            time_to_first_token=min(output.time_to_first_token, output.generation_time),
            generation_time=output.generation_time,
            model_input_size=prepared.model_input_size,
            finish_reason=finish_reason,
            served_by='local',
            view_input_sizes=prepared.view_input_sizes,
        )


@dataclasses.dataclass
class _Output:
    token_ids: list[int]
    time_to_first_token: float
    generation_time: float


def check_processor(processor: Any) -> None:
    """A dry run of a loaded processor, so that a broken one fails the load, not every goal.

    The tokenizer must turn text into tokens that decode back to it (a checkpoint without
    tokenizer.json loads a tokenizer that knows no words), and the chat template plus the image
    processor must turn a prompt with one small image into model inputs.

    Raises:
        ValueError: what went wrong.
    """
    text = 'Is it safe to turn right?'
    ids = processor.tokenizer(text, add_special_tokens=False)['input_ids']
    if not ids or processor.tokenizer.decode(ids).strip() != text:
        raise ValueError(f'the tokenizer turns {text!r} into {len(ids)} token(s) that do not '
                         'decode back to it (tokenizer.json missing or empty?)')
    messages = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': text}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[np.zeros((64, 64, 3), np.uint8)],
                       return_tensors='pt')
    if int(inputs['input_ids'].shape[-1]) <= len(ids):
        raise ValueError('the processor put no image tokens into a prompt with an image')


def context_length(model_config: Any) -> int | None:
    """Tokens the checkpoint's text model can attend to (max_position_embeddings), if known."""
    text_config = getattr(model_config, 'text_config', None) or model_config
    value = getattr(text_config, 'max_position_embeddings', None)
    return int(value) if isinstance(value, int) and value > 0 else None


def constraint_shape(family: ModelFamily, *, reasoning: bool) -> dict[str, bool]:
    """What the local grammar writes around a family's answer: GrammarCompiler.constraint()'s
    and answer_formats.framing_tokens()' keyword arguments.
    """
    spec = family_spec(family)
    return {'reasoning': reasoning, 'opens_reasoning': not spec.thinking_opens_answer,
            'answer_tags': reasoning and spec.reasoning_prompt is ReasoningPrompt.SYSTEM_SUFFIX}


def check_context(prompt_tokens: int, max_new_tokens: int, context: int | None) -> None:
    """Refuse a prompt that, with the tokens asked for, does not fit the model's context.

    Prefill of an oversized prompt would hold the model for minutes and cannot be cancelled;
    refusing it costs nothing.

    Raises:
        InvalidRequestError: prompt_tokens + max_new_tokens > context; the message names all
            three numbers.
    """
    if context is None or prompt_tokens + max_new_tokens <= context:
        return
    if prompt_tokens >= context:
        fix = 'shorten the task, or send fewer frames (max_frames) or smaller ones'
    else:
        fix = 'lower max_new_tokens, or send fewer frames (max_frames)'
    raise InvalidRequestError(
        f'the prompt takes {prompt_tokens} tokens (text and frames) and {max_new_tokens} new '
        f"tokens were asked for, more than the model's context of {context} tokens: {fix}")


def build_messages(request: GenerationRequest, *, is_video: bool) -> list[dict[str, Any]]:
    """The conversation in the Cosmos convention: system, then a user turn with media first.

    With several cameras (request.views) each view is its label (prompts.view_label) then its
    video, or its image when it has one frame, in prompt order; is_video then does not apply.
    The media items carry no data: the chat template only places their placeholders, the
    frames go to the processor directly.
    """
    messages: list[dict[str, Any]] = []
    if request.prompt.system:
        messages.append({'role': 'system',
                         'content': [{'type': 'text', 'text': request.prompt.system}]})
    if request.views:
        media = [item for view in request.views
                 for item in ({'type': 'text', 'text': view_label(view.name)},
                              {'type': 'video' if len(view.frames) > 1 else 'image'})]
    else:
        media = [{'type': 'video'} if is_video else {'type': 'image'}]
    messages.append({'role': 'user',
                     'content': [*media, {'type': 'text', 'text': request.prompt.user}]})
    return messages


def video_metadata(timestamps: Sequence[float], family: ModelFamily, *, width: int,
                   height: int, origin: float | None = None) -> dict[str, Any]:
    """The VideoMetadata (as a dict) that carries the frames' real timing to the processor.

    See families.video_timing: text-timestamp families (Reason2, Cosmos 3) get the frames as
    indices of a virtual 1000 fps video, so the processor writes `<t seconds>` markers from the
    real stamps (one per frame for Cosmos3-Edge, averaged over each pair for the others);
    Qwen2.5-VL gets the frames' mean rate for its rotary time embedding.

    Args:
        timestamps: Stamps of the frames in seconds, increasing.
        family: Model family.
        width: Frame width in pixels.
        height: Frame height in pixels.
        origin: The stamp that is 0 seconds (video_timing); None: the first frame's.
    """
    timing = video_timing(timestamps, family, origin=origin)
    return {'fps': timing.fps, 'frames_indices': timing.frames_indices,
            'total_num_frames': timing.total_num_frames, 'duration': timing.duration,
            'width': width, 'height': height}


def generation_kwargs(sampling: Sampling) -> dict[str, Any]:
    """Map Sampling onto model.generate() arguments (presence_penalty has no equivalent)."""
    kwargs: dict[str, Any] = {'max_new_tokens': sampling.max_new_tokens}
    if sampling.greedy:
        # Clear the checkpoint's sampling defaults, or generate warns that they are unused.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                      top_k=sampling.top_k if sampling.top_k > 0 else None)
    return kwargs


def _check_stop(stop: threading.Event, model_id: str) -> None:
    if stop.is_set():
        raise LoadStopped(f"loading '{model_id}' was stopped before it finished")


def _free_memory(device: str) -> None:
    """Collect what was just dropped and give cached CUDA blocks back to the driver."""
    gc.collect()
    if str(device).startswith('cuda') and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _looks_like_path(model: str) -> bool:
    """Hub ids are 'name' or 'org/name'; anything else is meant as a local directory."""
    return (os.path.isabs(model) or model.startswith(('.', '~')) or model.count('/') > 1
            or '\\' in model)


def _one_line(exc: Exception) -> str:
    return ' '.join(str(exc).split()).rstrip('.')


def _as_tuple(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),)


def _frame_size(frames: Sequence[np.ndarray]) -> str:
    height, width = np.asarray(frames[0]).shape[:2]
    return f'{width}x{height}'


def _frames_in(request: GenerationRequest) -> str:
    """The request's frames in words: '8 frame(s) of 640x360 px', with several cameras
    '16 frame(s) of 2 cameras (head: 8 of 640x360 px, wrist: 8 of 320x240 px)'.
    """
    if not request.views:
        return f'{len(request.frames)} frame(s) of {_frame_size(request.frames)} px'
    each = ', '.join(f'{view.name}: {len(view.frames)} of {_frame_size(view.frames)} px'
                     for view in request.views)
    count = sum(len(view.frames) for view in request.views)
    return f'{count} frame(s) of {len(request.views)} cameras ({each})'


def _widest(bounds: Sequence[dict[str, int]]) -> dict[str, int]:
    """One processor size bound that resizes none of the views whose own bounds these are."""
    return {'shortest_edge': min(bound['shortest_edge'] for bound in bounds),
            'longest_edge': max(bound['longest_edge'] for bound in bounds)}


def _largest(sizes: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The element-wise largest (width, height) of several views; None for none."""
    if not sizes:
        return None
    return (max(width for width, _ in sizes), max(height for _, height in sizes))

"""Hooks into transformers' generate(): new tokens decoded and streamed on as text, and a cancel
checked at every decoding step.
"""

from collections.abc import Sequence
import threading
import time
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from cosmos_reason_ros.core.backends.base import StreamCallback


class CancelCriteria(StoppingCriteria):
    """Stops generation at the next decoding step once the cancel event is set."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: Any,
                 **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._cancel.is_set(), dtype=torch.bool,
                          device=input_ids.device)


class Decoder:
    """Token ids to answer text: control tokens removed, <think> and </think> kept.

    The Qwen3 tokenizers mark the think tags as ordinary added tokens, but a checkpoint that
    marks them special would lose them to skip_special_tokens; the parser needs them.
    """

    KEEP = ('<think>', '</think>')

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        hidden = set(tokenizer.all_special_ids)
        hidden.update(token_id for token_id, token in tokenizer.added_tokens_decoder.items()
                      if token.special)
        hidden.difference_update(token_id for token_id, token
                                 in tokenizer.added_tokens_decoder.items()
                                 if token.content in self.KEEP)
        self._hidden = frozenset(hidden)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode([t for t in token_ids if t not in self._hidden],
                                      skip_special_tokens=False,
                                      clean_up_tokenization_spaces=False)


class TextStreamer(BaseStreamer):
    """Decodes new tokens as they come and hands the new text to a callback.

    The first put() is the prompt and is skipped. Text is decoded per segment of tokens and a
    segment only ends on a complete character, so the pieces add up to decoding all tokens at
    once; a trailing replacement character (an incomplete UTF-8 sequence) is held back.
    """

    _SEGMENT_TOKENS = 32

    def __init__(self, decoder: Decoder, on_text: StreamCallback | None) -> None:
        self._decoder = decoder
        self._on_text = on_text
        self._prompt_seen = False
        self._token_ids: list[int] = []
        self._segment_start = 0
        self._segment_emitted = 0
        self.first_token_time: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if self.first_token_time is None:
            self.first_token_time = time.perf_counter()
        self._token_ids.extend(int(token) for token in value.reshape(-1).tolist())
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self._on_text is None:
            return
        segment = self._decoder.decode(self._token_ids[self._segment_start:])
        if segment.endswith('\ufffd') and not final:
            return
        delta = segment[self._segment_emitted:]
        if len(self._token_ids) - self._segment_start >= self._SEGMENT_TOKENS:
            self._segment_start = len(self._token_ids)
            self._segment_emitted = 0
        else:
            self._segment_emitted = len(segment)
        if delta:
            self._on_text(delta, len(self._token_ids))


__all__ = ['CancelCriteria', 'Decoder', 'TextStreamer']

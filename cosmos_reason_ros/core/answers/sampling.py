"""Sampling presets of the Cosmos-Reason models, and a goal's overrides applied to them."""

import dataclasses
import math

from cosmos_reason_ros.core.backends.base import Sampling
from cosmos_reason_ros.core.errors import InvalidRequestError


def sampling_preset(*, reasoning: bool, max_new_tokens: int) -> Sampling:
    """Return NVIDIA's recommended sampling for Cosmos-Reason2, with or without reasoning.

    Args:
        reasoning: Whether the prompt asks for <think> reasoning.
        max_new_tokens: Generation budget (4096 is recommended for long reasoning).

    Raises:
        InvalidRequestError: max_new_tokens is not positive.
    """
    _check_max_new_tokens(max_new_tokens)
    if reasoning:
        return Sampling(max_new_tokens=max_new_tokens, temperature=0.6, top_p=0.95, top_k=20)
    return Sampling(max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.8, top_k=20,
                    presence_penalty=1.5)


def resolve_sampling(preset: Sampling, *, greedy: bool = False,
                     temperature: float | None = None, top_p: float | None = None,
                     top_k: int | None = None, seed: int | None = None,
                     max_new_tokens: int | None = None) -> Sampling:
    """Apply a goal's overrides to a preset; None keeps the preset's value.

    A temperature of 0 means greedy decoding (as in the OpenAI API); greedy=True forces it.

    Args:
        preset: Settings to start from (usually sampling_preset()).
        greedy: Decode greedily (reproducible evaluation); False keeps the preset's choice.
        temperature: Softmax temperature, >= 0.
        top_p: Nucleus mass, in (0, 1].
        top_k: Keep the k most likely tokens, >= 0 (0 disables the filter).
        seed: Seed of the sampler, for repeatable sampled answers.
        max_new_tokens: Generation budget, > 0.

    Raises:
        InvalidRequestError: a value is out of range; the message names it.
    """
    changes = {}
    if temperature is not None:
        if not math.isfinite(temperature) or temperature < 0:
            raise InvalidRequestError(
                f'temperature must be a finite number >= 0, got {temperature}')
        if temperature == 0:
            changes['greedy'] = True
        else:
            changes['temperature'] = float(temperature)
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise InvalidRequestError(f'top_p must be in (0, 1], got {top_p}')
        changes['top_p'] = float(top_p)
    if top_k is not None:
        if top_k < 0:
            raise InvalidRequestError(f'top_k must be >= 0 (0 disables it), got {top_k}')
        changes['top_k'] = int(top_k)
    if seed is not None:
        changes['seed'] = int(seed)
    if max_new_tokens is not None:
        _check_max_new_tokens(max_new_tokens)
        changes['max_new_tokens'] = int(max_new_tokens)
    if greedy:
        changes['greedy'] = True
    return dataclasses.replace(preset, **changes)


def _check_max_new_tokens(max_new_tokens: int) -> None:
    if max_new_tokens < 1:
        raise InvalidRequestError(f'max_new_tokens must be at least 1, got {max_new_tokens}')

"""Published evaluation procedures, reproduced: NVIDIA's Cosmos-Reason1 benchmark evaluator.

What it does (nvidia-cosmos/cosmos-reason1, examples/benchmark/tools/eval and
configs/evaluate.yaml): system prompt "Answer the questions."; the question, one "(key) text"
line per option and the letter instruction; in the reasoning variant (the default) a request for
`<think>` and `<answer>` tags. It samples (temperature 0.6, top_p 0.95, 1024 new tokens, seed 1),
takes the first capital letter inside `<answer>...</answer>` (the letter variant: greedy, 10
tokens, the first capital letter of the text), compares it with the key ignoring case, retries
only the items whose extracted answer is empty, and pools every item of every dataset into one
accuracy (correct / items), with no per-dataset mean.
"""

import dataclasses
import re
from typing import Any

from cosmos_reason_ros.core.answers.prompts import MULTIPLE_CHOICE_INSTRUCTION
from cosmos_reason_ros.core.backends.base import Prompt, Sampling
from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.core.evaluation.questions import QuestionItem

REASON1_BENCHMARK = 'reason1-benchmark'
PROTOCOLS = (REASON1_BENCHMARK,)
REASONING = 'reasoning'
LETTER = 'letter'
SYSTEM_PROMPT = 'Answer the questions.'
REASONING_INSTRUCTION = (
    'Please answer the question in the following format: <think> your reasoning </think> '
    '<answer> your single letter answer </answer>.')

_ANSWER_TAGS = re.compile(r'<answer>(.*?)</answer>', re.DOTALL)
_CAPITAL = re.compile(r'[A-Z]')


@dataclasses.dataclass(frozen=True)
class Reason1Benchmark:
    """The Reason1 benchmark procedure: prompt, decoding, answer extraction, retries."""

    answer_type: str = REASONING
    """'reasoning' (NVIDIA's configured default) or 'letter'."""
    max_retries: int = 10
    """Extra attempts for an item whose extracted answer is empty (evaluate.yaml: 10)."""
    max_new_tokens: int = 1024
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 1
    fps: float = 4.0
    """Frames per second of the clip the model sees (evaluate.yaml: 4); all of them."""

    def __post_init__(self):
        if self.answer_type not in (REASONING, LETTER):
            raise InvalidRequestError(
                f'answer type {self.answer_type!r} is not one of {REASONING}, {LETTER}')
        if self.max_retries < 0:
            raise InvalidRequestError(f'max_retries must be >= 0, got {self.max_retries}')

    @property
    def name(self) -> str:
        """The preset's name on the command line."""
        return REASON1_BENCHMARK

    def prompt(self, item: QuestionItem) -> Prompt:
        """The evaluator's prompt for a multiple-choice item, its option keys as labels."""
        labels = item.choice_labels or tuple(chr(ord('A') + i) for i in range(len(item.choices)))
        lines = [item.task, *(f'({label}) {choice}'
                              for label, choice in zip(labels, item.choices, strict=True)),
                 MULTIPLE_CHOICE_INSTRUCTION]
        if self.answer_type == REASONING:
            lines.append(REASONING_INSTRUCTION)
        return Prompt(system=SYSTEM_PROMPT, user='\n'.join(lines))

    def sampling(self, attempt: int = 0) -> Sampling:
        """Decoding for one attempt (0 first, then retries).

        NVIDIA's evaluator retries with the same sampling parameters; with a fixed seed that
        would repeat the empty answer, so each retry here advances the seed by one.
        """
        seed = self.seed + attempt
        if self.answer_type == LETTER:
            return Sampling(max_new_tokens=10, greedy=True, seed=seed)
        # top_k 0: no top-k filter, as vLLM's default (-1) in the evaluator.
        return Sampling(max_new_tokens=self.max_new_tokens, greedy=False,
                        temperature=self.temperature, top_p=self.top_p, top_k=0, seed=seed)

    def extract(self, text: str) -> str:
        """The answer letter the evaluator reads from a model output ('' when none)."""
        if self.answer_type == REASONING:
            tags = _ANSWER_TAGS.search(text)
            if tags is None:
                return ''
            text = tags.group(1)
        letter = _CAPITAL.search(text)
        return letter.group(0) if letter else ''

    def is_correct(self, letter: str, item: QuestionItem) -> bool:
        """Whether the extracted letter is the item's answer key, ignoring case."""
        if not letter or not item.expected.choice:
            return False
        index = ord(item.expected.choice) - ord('A')
        key = item.choice_labels[index] if item.choice_labels else item.expected.choice
        return letter.lower() == key.lower()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings for the report."""
        sampling = dataclasses.asdict(self.sampling())
        sampling.pop('seed')
        return {'name': self.name, 'answer_type': self.answer_type,
                'max_retries': self.max_retries, 'seed': self.seed, 'fps': self.fps,
                'system_prompt': SYSTEM_PROMPT, 'sampling': sampling}


def full_output(text: str, reasoning: str | None) -> str:
    """The whole generated text for answer extraction: a server's separate reasoning goes back
    in front of the content inside <think> tags, as the model wrote it.
    """
    return f'<think>{reasoning}</think>{text}' if reasoning else text


__all__ = ['LETTER', 'PROTOCOLS', 'REASON1_BENCHMARK', 'REASONING', 'REASONING_INSTRUCTION',
           'Reason1Benchmark', 'SYSTEM_PROMPT', 'full_output']

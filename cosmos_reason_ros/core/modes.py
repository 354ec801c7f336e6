"""What a goal can ask for (modes) and which model family answers it."""

import enum


class Mode(str, enum.Enum):
    """The kinds of question the node serves; values match Reason.action's MODE_* constants."""

    QUESTION = 'question'
    CAPTION = 'caption'
    NEXT_ACTION = 'next_action'
    TRAJECTORY = 'trajectory'
    GROUNDING = 'grounding'
    TEMPORAL = 'temporal_localization'
    MULTIPLE_CHOICE = 'multiple_choice'

    @classmethod
    def from_name(cls, name: str) -> 'Mode':
        """Return the mode called `name` ('' means QUESTION).

        Raises:
            ValueError: if the name is not a mode; the message lists the valid ones.
        """
        if not name:
            return cls.QUESTION
        try:
            return cls(name.strip().lower())
        except ValueError:
            valid = ', '.join(m.value for m in cls)
            raise ValueError(f'unknown mode {name!r}; use one of: {valid}') from None


class ModelFamily(str, enum.Enum):
    """Model families, told apart by the checkpoint config's model_type.

    The family decides the prompt conventions (where the reasoning instruction goes), how frame
    timing reaches the model, and which coordinate convention its answers use.
    """

    QWEN3_VL = 'qwen3_vl'      # Cosmos-Reason2: coordinates 0-1000 per axis
    QWEN2_5_VL = 'qwen2_5_vl'  # Cosmos-Reason1: coordinates in pixels of the resized model input

    @classmethod
    def from_model_type(cls, model_type: str) -> 'ModelFamily':
        """Map a transformers `config.model_type` to a family.

        Raises:
            ValueError: for a model type this package does not support.
        """
        known = {
            'qwen3_vl': cls.QWEN3_VL,
            'qwen3_vl_moe': cls.QWEN3_VL,
            'qwen2_5_vl': cls.QWEN2_5_VL,
        }
        try:
            return known[model_type]
        except KeyError:
            raise ValueError(
                f'unsupported model type {model_type!r}: supported are Qwen3-VL '
                '(Cosmos-Reason2) and Qwen2.5-VL (Cosmos-Reason1) checkpoints') from None

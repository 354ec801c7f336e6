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

    Their conventions (prompts, frame timing, coordinates, thinking switch) are the entries of
    core.answers.families.FAMILY_SPECS.
    """

    QWEN3_VL = 'qwen3_vl'            # Cosmos-Reason2: coordinates 0-1000 per axis
    QWEN2_5_VL = 'qwen2_5_vl'        # Cosmos-Reason1: pixels of the resized model input
    COSMOS3_EDGE = 'cosmos3_edge'    # Cosmos3-Edge reasoner: 0-1000, one timestamp per frame
    COSMOS3_OMNI = 'cosmos3_omni'    # Cosmos3-Nano/Super reasoner (a Qwen3-VL model): 0-1000

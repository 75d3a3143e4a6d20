"""keras-hub's `ByteTokenizer` plus special tokens after the 256 byte ids."""

import keras_hub
import numpy as np
import tensorflow as tf

from keras_transformer.registration import register

END_TOKEN = "</s>"
START_TOKEN = "<s>"
MASK_TOKEN = "[MASK]"


def sentinel_token(index):
    """The T5 sentinel token string for span `index` (0-based): `<extra_id_{index}>`."""
    return f"<extra_id_{index}>"


@register
class SpecialByteTokenizer(keras_hub.tokenizers.ByteTokenizer):
    """Byte-level tokenizer (UTF-8 bytes, no training) with special ids appended.

    Ids 0-255 are the bytes, exactly as `keras_hub.tokenizers.ByteTokenizer`
    gives them; id 0 (the NUL byte, which never occurs in the text files
    `read_text_files` accepts) doubles as padding, as keras-hub's own padding
    does. Then:

        256 `</s>` (end / separator), 257 `<s>` (start), 258 `[MASK]`,
        259 + i `<extra_id_i>` for i < num_sentinels (T5 span sentinels).

    Text never tokenizes to a special id (a literal "[MASK]" in the text is six
    bytes); `detokenize` renders special ids as their token strings and drops
    padding. Unlike the parent, `lowercase` defaults to False.

    Args:
        num_sentinels: number of `<extra_id_i>` tokens (0 for causal LM only).
        **kwargs: `ByteTokenizer` arguments (`lowercase`, `sequence_length`,
            `normalization_form`, `errors`, `replacement_char`, `dtype`, `name`).
    """

    def __init__(self, num_sentinels=100, lowercase=False, **kwargs):
        if not isinstance(num_sentinels, int) or num_sentinels < 0:
            raise ValueError(
                f"num_sentinels must be a non-negative int; received num_sentinels={num_sentinels!r}"
            )
        self.num_sentinels = num_sentinels
        self._special_strings = [END_TOKEN, START_TOKEN, MASK_TOKEN] + [
            sentinel_token(i) for i in range(num_sentinels)
        ]
        super().__init__(lowercase=lowercase, **kwargs)

    def _maybe_initialized_tf(self):
        # The parent gathers detokenized strings from this table; extend it with
        # the special tokens so special ids detokenize to their strings.
        if self._char_lst is None:
            byte_strings = [np.uint8(i).tobytes() for i in range(256)]
            self._char_lst = tf.constant(
                byte_strings + [token.encode("utf-8") for token in self._special_strings]
            )

    def vocabulary_size(self):
        return 256 + len(self._special_strings)

    def get_vocabulary(self):
        vocabulary = super().get_vocabulary()  # {chr(byte): byte}
        vocabulary.update({token: 256 + i for i, token in enumerate(self._special_strings)})
        return vocabulary

    def id_to_token(self, id):
        if 256 <= id < self.vocabulary_size():
            return self._special_strings[id - 256]
        return super().id_to_token(id)

    def token_to_id(self, token):
        if token in self._special_strings:
            return 256 + self._special_strings.index(token)
        return super().token_to_id(token)

    def _detokenize_python(self, inputs):
        # The parent's Python path accepts byte ids only.
        batched = np.ndim(inputs) > 1 or (
            isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple))
        )
        rows = inputs if batched else [inputs]
        outputs = []
        for row in rows:
            pieces = []
            for i in np.asarray(row).tolist():
                if i == 0:
                    continue
                if i >= 256:
                    pieces.append(self.id_to_token(i).encode("utf-8"))
                else:
                    pieces.append(bytes([i]))
            outputs.append(b"".join(pieces).decode("utf-8", errors="replace"))
        return outputs if batched else outputs[0]

    def get_config(self):
        config = super().get_config()
        config["num_sentinels"] = self.num_sentinels
        return config

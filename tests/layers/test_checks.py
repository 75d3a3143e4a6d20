"""One kind of bad argument, one message, whichever layer receives it."""

import pytest

from keras_transformer.layers import (
    FeedForward,
    LearnedPositionEmbedding,
    MultiHeadAttention,
    RelativePositionBias,
    ReversibleEmbedding,
    RMSNorm,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
    TokenAndPositionEmbedding,
    TransformerEncoderBlock,
)
from keras_transformer.layers._checks import check_start_index


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: FeedForward(intermediate_dim=v), "intermediate_dim"),
        (lambda v: LearnedPositionEmbedding(sequence_length=v), "sequence_length"),
        (lambda v: RelativePositionBias(num_heads=v), "num_heads"),
        (lambda v: ReversibleEmbedding(input_dim=v, output_dim=4), "input_dim"),
        (lambda v: TokenAndPositionEmbedding(vocabulary_size=v, sequence_length=4, embedding_dim=4),
         "vocabulary_size"),
        (lambda v: TransformerEncoderBlock(num_heads=v, intermediate_dim=4), "num_heads"),
        (lambda v: MultiHeadAttention(num_heads=2, key_dim=2, num_key_value_heads=v), "num_key_value_heads"),
    ],
)
@pytest.mark.parametrize("value", [0, -1, 2.0, True])
def test_positive_integer_message_is_shared(make, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be (None or )?a positive integer; received {name}={value!r}$"):
        make(value)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: RMSNorm(epsilon=v), "epsilon"),
        (lambda v: RotaryEmbedding(max_wavelength=v), "max_wavelength"),
        (lambda v: SinusoidalPositionEncoding(max_wavelength=v), "max_wavelength"),
        (lambda v: MultiHeadAttention(num_heads=2, key_dim=2, rotary_max_wavelength=v), "rotary_max_wavelength"),
    ],
)
def test_positive_number_message_is_shared(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive number; received {name}=0$"):
        make(0)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: FeedForward(intermediate_dim=4, dropout=v),
        lambda v: TransformerEncoderBlock(num_heads=2, intermediate_dim=4, dropout=v),
        lambda v: MultiHeadAttention(num_heads=2, key_dim=2, dropout=v),
    ],
)
def test_dropout_message_is_shared(make):
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\); received dropout=1.0$"):
        make(1.0)


def test_start_index_checks_python_ints_only():
    check_start_index(0)
    check_start_index(object())  # a tensor stand-in: its value is checked where it is known
    with pytest.raises(ValueError, match=r"^start_index must be non-negative; received start_index=-1$"):
        check_start_index(-1)

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import (
    RelativePositionBias,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from tests import reference
from tests.layers.test_multi_head_attention import weights_of as attention_weights
from tests.test_case import assert_allclose, run_layer_test

RNG = np.random.default_rng(1)
BATCH, LEN, SRC, DIM = 2, 5, 4, 8

BERT_LIKE = dict(num_heads=2, intermediate_dim=12, activation="gelu", layer_norm_epsilon=1e-12)
GPT_LIKE = dict(num_heads=2, intermediate_dim=12, activation="gelu_approximate", normalize_first=True)
T5_LIKE = dict(
    num_heads=2,
    intermediate_dim=12,
    activation="gelu_approximate",
    gated_feed_forward=True,
    normalization="rms_norm",
    normalize_first=True,
    layer_norm_epsilon=1e-6,
    use_bias=False,
    use_attention_scale=False,
)
GQA_ROTARY = dict(
    num_heads=4, intermediate_dim=12, num_key_value_heads=2, use_rotary_embedding=True,
    normalize_first=True, activation="silu", gated_feed_forward=True,
)
CONFIGS = {"bert": BERT_LIKE, "gpt": GPT_LIKE, "t5": T5_LIKE, "gqa-rotary": GQA_ROTARY}


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def padding(length, lengths):
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")


def randomize(layer):
    layer.set_weights([RNG.normal(size=w.shape).astype("float32") * 0.4 + (w == 1) for w in layer.get_weights()])


def block_weights(block):
    def ff(layer):
        w = {"intermediate_kernel": layer.intermediate_dense.kernel, "output_kernel": layer.output_dense.kernel}
        if layer.gated:
            w["gate_kernel"] = layer.gate_dense.kernel
        if layer.use_bias:
            w["intermediate_bias"] = layer.intermediate_dense.bias
            w["output_bias"] = layer.output_dense.bias
            if layer.gated:
                w["gate_bias"] = layer.gate_dense.bias
        return {k: ops.convert_to_numpy(v) for k, v in w.items()}

    weights = {"self_attention": attention_weights(block.self_attention), "feed_forward": ff(block.feed_forward)}
    names = ["self_attention_norm", "feed_forward_norm"]
    if getattr(block, "cross_attention", None) is not None:
        weights["cross_attention"] = attention_weights(block.cross_attention)
        names.append("cross_attention_norm")
    for name in names:
        weights[name] = [ops.convert_to_numpy(w) for w in getattr(block, name).weights]
    return weights


def reference_block(block, x, **kwargs):
    config = block.get_config()
    rotary = config["use_rotary_embedding"]
    assert not rotary, "the NumPy block reference has no rotary; rotary is checked via cache equality"
    return reference.transformer_block(
        x,
        block_weights(block),
        num_heads=config["num_heads"],
        num_key_value_heads=config["num_key_value_heads"],
        normalize_first=config["normalize_first"],
        normalization=config["normalization"],
        eps=config["layer_norm_epsilon"],
        activation=config["activation"],
        gated=config["gated_feed_forward"],
        use_scale=config["use_attention_scale"],
        **kwargs,
    )


# ------------------------------------------------------------------ harness


@pytest.mark.parametrize("name", list(CONFIGS))
def test_encoder_harness(name):
    run_layer_test(
        TransformerEncoderBlock,
        CONFIGS[name],
        {"inputs": normal(BATCH, LEN, DIM), "padding_mask": padding(LEN, [5, 3])},
        (BATCH, LEN, DIM),
    )


@pytest.mark.parametrize("name", ["gpt", "t5"])
def test_decoder_harness(name):
    run_layer_test(
        TransformerDecoderBlock,
        CONFIGS[name],
        {
            "decoder_sequence": normal(BATCH, LEN, DIM),
            "encoder_sequence": normal(BATCH, SRC, DIM),
            "decoder_padding_mask": padding(LEN, [5, 2]),
            "encoder_padding_mask": padding(SRC, [4, 3]),
        },
        (BATCH, LEN, DIM),
    )


def test_decoder_only_harness():
    run_layer_test(
        TransformerDecoderBlock,
        GPT_LIKE,
        {"decoder_sequence": normal(BATCH, LEN, DIM)},
        (BATCH, LEN, DIM),
        run_precision_checks=False,  # covered by the cross-attention case above
    )


# -------------------------------------------------------------- numerics


@pytest.mark.parametrize("name", ["bert", "gpt", "t5"])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_matches_reference(name, causal):
    block = TransformerEncoderBlock(**CONFIGS[name])
    x = normal(BATCH, LEN, DIM)
    pad = padding(LEN, [5, 3])
    block(x)
    randomize(block)
    bias = normal(1, 2, LEN, LEN)
    mask = np.broadcast_to(pad[:, None, :].astype(bool), (BATCH, LEN, LEN))
    if causal:
        mask = mask & reference.causal(LEN, LEN)[None]
    got = block(x, padding_mask=pad, attention_bias=bias, use_causal_mask=causal)
    assert_allclose(got, reference_block(block, x, mask=mask, bias=bias), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["gpt", "t5"])
def test_decoder_matches_reference(name):
    block = TransformerDecoderBlock(**CONFIGS[name])
    x, enc = normal(BATCH, LEN, DIM), normal(BATCH, SRC, DIM)
    dec_pad, enc_pad = padding(LEN, [5, 2]), padding(SRC, [4, 1])
    block(x, enc)
    randomize(block)
    self_mask = dec_pad[:, None, :].astype(bool) & reference.causal(LEN, LEN)[None]
    cross_mask = np.broadcast_to(enc_pad[:, None, :].astype(bool), (BATCH, LEN, SRC))
    got = block(x, enc, decoder_padding_mask=dec_pad, encoder_padding_mask=enc_pad)
    want = reference_block(block, x, mask=self_mask, encoder=enc, cross_mask=cross_mask)
    assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_implicit_keras_mask_equals_explicit_padding_mask():
    ids = np.array([[4, 5, 6, 0, 0], [1, 2, 3, 4, 5]], "int32")
    embedding = keras.layers.Embedding(10, DIM, mask_zero=True)
    block = TransformerEncoderBlock(**BERT_LIKE)
    embedded = embedding(ids)
    implicit = block(embedded)
    explicit = block(ops.convert_to_tensor(ops.convert_to_numpy(embedded)), padding_mask=ids != 0)
    # Outputs at padded positions are unspecified (Keras masks those query rows too).
    real = ids != 0
    assert_allclose(ops.convert_to_numpy(implicit)[real], ops.convert_to_numpy(explicit)[real], atol=1e-6)
    # The mask flows on through a functional model.
    inputs = keras.Input((5,), dtype="int32")
    outputs = TransformerEncoderBlock(**BERT_LIKE)(embedding(inputs))
    assert outputs._keras_mask is not None


# ------------------------------------------------------------------ cache


@pytest.mark.parametrize("name", ["gpt", "t5", "gqa-rotary"])
@pytest.mark.parametrize("cross", [False, True])
def test_cached_decoding_equals_full_sequence(name, cross):
    block = TransformerDecoderBlock(**CONFIGS[name])
    x, enc = normal(BATCH, LEN, DIM), normal(BATCH, SRC, DIM)
    dec_pad, enc_pad = padding(LEN, [5, 4]), padding(SRC, [4, 2])
    position_bias = RelativePositionBias(num_heads=block.num_heads, bidirectional=False, num_buckets=8)
    use_bias = name == "t5"
    full_bias = position_bias(x) if use_bias else None
    encoder_kwargs = {"encoder_sequence": enc, "encoder_padding_mask": enc_pad} if cross else {}
    full = block(x, decoder_padding_mask=dec_pad, self_attention_bias=full_bias, **encoder_kwargs)
    randomize(block)
    full = block(x, decoder_padding_mask=dec_pad, self_attention_bias=full_bias, **encoder_kwargs)

    cache = block.initial_cache(BATCH, LEN)
    cross_cache = block.compute_cross_attention_cache(enc) if cross else None
    steps, start = [], 0
    for stop in (2, 3, 4, 5):  # a 2-token prompt, then one token at a time
        chunk = x[:, start:stop]
        step_bias = position_bias(chunk, x, start_index=start) if use_bias else None
        out, cache = block.call_with_cache(
            chunk,
            cache,
            start,
            cross_attention_cache=cross_cache,
            decoder_padding_mask=dec_pad,
            encoder_padding_mask=enc_pad if cross else None,
            self_attention_bias=step_bias,
        )
        steps.append(out)
        start = stop
    assert_allclose(ops.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ errors


def test_num_heads_must_divide_hidden_dim():
    block = TransformerEncoderBlock(num_heads=3, intermediate_dim=8)
    with pytest.raises(ValueError, match="hidden_dim=8, num_heads=3"):
        block(normal(1, 2, DIM))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"activation": "not_an_activation"}, "activation"),
        ({"normalization": "batch_norm"}, "normalization"),
        ({"dropout": -0.1}, "dropout"),
        ({"num_heads": 0}, "num_heads"),
        ({"intermediate_dim": 0}, "intermediate_dim"),
    ],
)
@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**{"num_heads": 2, "intermediate_dim": 8, **kwargs})


def test_mask_of_wrong_rank():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=8)
    with pytest.raises(ValueError, match="padding_mask"):
        block(normal(BATCH, LEN, DIM), padding_mask=np.ones((BATCH, LEN, LEN)))


def test_cross_attention_must_be_consistent():
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=8)
    block(normal(BATCH, LEN, DIM))
    with pytest.raises(ValueError, match="without cross-attention"):
        block(normal(BATCH, LEN, DIM), normal(BATCH, SRC, DIM))
    seq2seq = TransformerDecoderBlock(num_heads=2, intermediate_dim=8)
    seq2seq(normal(BATCH, LEN, DIM), normal(BATCH, SRC, DIM))
    with pytest.raises(ValueError, match="encoder_sequence"):
        seq2seq(normal(BATCH, LEN, DIM))

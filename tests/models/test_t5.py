"""T5: config and presets, backbone and seq2seq LM, cached decoding, parameter counts, training."""

import dataclasses
import inspect
import math
import time

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.models import T5Backbone, T5Config, T5Seq2SeqLM, get_preset, list_presets
from keras_transformer.text.corpus import split_documents, stdlib_documents
from tests.test_case import assert_allclose, compiled, run_model_saving_test, run_model_test, to_numpy

BATCH, SOURCE, TARGET = 2, 7, 5
TINY = get_preset("t5_tiny")  # 1 encoder / 2 decoder blocks, 4 heads x 8 != hidden 24
V1_1 = dict(
    activation="gelu_approximate",
    gated_feed_forward=True,
    tie_word_embeddings=False,
    scale_decoder_outputs=False,
)
STYLES = {"v1_0": {}, "v1_1": V1_1}


def tiny_inputs(seed=0, batch=BATCH, source=SOURCE, target=TARGET):
    rng = np.random.default_rng(seed)
    encoder_mask = np.ones((batch, source), "int32")
    encoder_mask[1, source - 3 :] = 0
    decoder_mask = np.ones((batch, target), "int32")
    decoder_mask[1, target - 2 :] = 0
    decoder_ids = rng.integers(1, TINY.vocabulary_size, (batch, target)).astype("int32")
    decoder_ids[:, 0] = 0  # T5's decoder start token is the pad id
    return {
        "encoder_token_ids": rng.integers(1, TINY.vocabulary_size, (batch, source)).astype("int32") * encoder_mask,
        "encoder_padding_mask": encoder_mask,
        "decoder_token_ids": decoder_ids * decoder_mask,
        "decoder_padding_mask": decoder_mask,
    }


def tiny_lm(style="v1_0", compile=False, **overrides):
    lm = T5Seq2SeqLM.from_preset("t5_tiny", backbone_overrides={**STYLES[style], **overrides})
    if compile:
        lm.compile()
    return lm


# ------------------------------------------------------------------ config and presets


def test_presets_are_listed_and_unknown_names_list_them():
    expected = {"t5_small", "t5_base", "t5_large", "t5_1_1_small", "t5_1_1_base", "t5_1_1_large", "t5_tiny"}
    assert set(list_presets("t5")) == expected
    with pytest.raises(ValueError, match="unknown preset 't5_huge'.*t5_1_1_base.*t5_small"):
        T5Backbone.from_preset("t5_huge")
    with pytest.raises(ValueError, match="valid presets: .*t5_tiny"):
        T5Seq2SeqLM.from_preset("bert_base")


def test_preset_shapes():
    small, v11_small, v11_large = get_preset("t5_small"), get_preset("t5_1_1_small"), get_preset("t5_1_1_large")
    assert (small.num_layers, small.hidden_dim, small.num_heads, small.key_dim, small.intermediate_dim) == (
        6, 512, 8, 64, 2048,
    )
    assert small.activation == "relu" and small.tie_word_embeddings and small.scale_decoder_outputs
    assert (v11_small.num_layers, v11_small.num_heads, v11_small.intermediate_dim) == (8, 6, 1024)
    assert v11_small.num_heads * v11_small.key_dim != v11_small.hidden_dim
    assert v11_small.gated_feed_forward and not v11_small.tie_word_embeddings
    assert not v11_small.scale_decoder_outputs and v11_small.activation == "gelu_approximate"
    assert (v11_large.num_layers, v11_large.hidden_dim, v11_large.intermediate_dim) == (24, 1024, 2816)
    assert all(get_preset(n).vocabulary_size == 32128 for n in list_presets("t5") if n != "t5_tiny")


def test_config_round_trip_and_decoder_layers():
    config = T5Config(num_layers=3)
    assert config.num_decoder_layers is None and config.decoder_layers == 3
    assert config.replace(num_decoder_layers=5).decoder_layers == 5
    assert T5Config.from_json(TINY.to_json()) == TINY
    # The backbone's arguments are the config's fields, with the same defaults.
    params = inspect.signature(T5Backbone.__init__).parameters
    for field in dataclasses.fields(T5Config):
        assert params[field.name].default == getattr(T5Config(), field.name), field.name


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"activation": "sparkle"}, "activation='sparkle'"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings must be a bool"),
        ({"key_dim": 0}, "key_dim must be a positive integer"),
        ({"num_decoder_layers": 0}, "num_decoder_layers"),
        ({"relative_attention_max_distance": 8}, "relative_attention_max_distance=8"),
        ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        TINY.replace(relative_attention_num_buckets=16, **changes)


# ------------------------------------------------------------------ harness


def test_backbone_model_test():
    data = tiny_inputs()
    shapes = {
        "encoder_sequence_output": (BATCH, SOURCE, TINY.hidden_dim),
        "decoder_sequence_output": (BATCH, TARGET, TINY.hidden_dim),
    }
    backbone, _ = run_model_test(lambda: T5Backbone.from_preset("t5_tiny"), data, shapes)
    config = backbone.get_config()
    assert T5Backbone.from_config(config).get_config() == config
    assert len(backbone.encoder_blocks) == 1 and len(backbone.decoder_blocks) == 2


@pytest.mark.parametrize("style", sorted(STYLES))
def test_lm_model_test(style):
    data = tiny_inputs()
    targets = np.roll(data["decoder_token_ids"], -1, axis=1)  # any ids will do for the fit check
    # fit is traced once per style elsewhere (v1_1 in the slow training test); keep this one fast.
    fit_data = (data, targets, data["decoder_padding_mask"]) if style == "v1_0" else None
    lm, _ = run_model_test(
        lambda: tiny_lm(style, compile=True),
        data,
        {"logits": (BATCH, TARGET, TINY.vocabulary_size)},
        fit_data=fit_data,
    )
    assert (lm.lm_head is None) == (style == "v1_0")
    assert (lm.decoder_output_rescale is None) == (style == "v1_1")


@pytest.mark.parametrize("style", sorted(STYLES))
def test_lm_saves_and_reloads(style):
    run_model_saving_test(tiny_lm(style), tiny_inputs())


# ------------------------------------------------------------------ numerics


@pytest.mark.parametrize("style", sorted(STYLES))
def test_head_is_tied_or_separate_and_rescaled(style):
    """Logits equal the head applied by hand to the backbone's decoder output."""
    lm, data = tiny_lm(style), tiny_inputs()
    hidden = to_numpy(lm.backbone(data)["decoder_sequence_output"])
    if style == "v1_0":
        expected = hidden * TINY.hidden_dim**-0.5 @ lm.backbone.token_embedding.embeddings.numpy().T
    else:
        expected = hidden @ lm.lm_head.kernel.numpy()
    assert_allclose(lm(data)["logits"], expected, atol=1e-5, rtol=1e-5)


def test_padding_and_future_tokens_do_not_leak():
    lm, data = tiny_lm("v1_1"), tiny_inputs()
    changed = {k: v.copy() for k, v in data.items()}
    changed["encoder_token_ids"][1, -3:] = 9  # padded encoder positions
    changed["decoder_token_ids"][:, 3:] = 11  # future decoder tokens for positions < 3
    before, after = to_numpy(lm(data)["logits"]), to_numpy(lm(changed)["logits"])
    assert_allclose(after[0, :3], before[0, :3], atol=1e-6)
    assert_allclose(after[1, :3], before[1, :3], atol=1e-6)
    assert np.abs(after[0, 3:] - before[0, 3:]).max() > 1e-3  # the assertion above can fail


def _cached_logits(lm, data, max_length):
    """Step-by-step decoding of data's decoder ids through the cache; (batch, max_length, vocab)."""
    encoder_mask = data["encoder_padding_mask"]
    encoder_output = lm.encode(data["encoder_token_ids"], encoder_mask)
    cross_cache = lm.compute_cross_attention_cache(encoder_output)
    cache = lm.initial_cache(BATCH, max_length)
    ids = data["decoder_token_ids"]
    logits = ops.zeros((BATCH, max_length, TINY.vocabulary_size))

    def step(i, state):
        cache, logits = state
        step_ids = ops.slice(ids, [0, i], [BATCH, 1])
        step_logits, cache = lm.call_with_cache(step_ids, cache, i, cross_cache, encoder_mask)
        return cache, ops.slice_update(logits, [0, i, 0], step_logits)

    return step, (cache, logits)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_cached_decoding_equals_full_forward_eager(style):
    lm, data = tiny_lm(style), tiny_inputs(1)
    full = to_numpy(lm(data)["logits"])
    step, state = _cached_logits(lm, data, TARGET)
    for i in range(TARGET):  # Python ints: the eager path
        state = step(i, state)
    cache, logits = state
    real = data["decoder_padding_mask"].astype(bool)
    assert_allclose(to_numpy(logits)[real], full[real], atol=1e-5, rtol=1e-5)
    assert tuple(cache.shape) == (BATCH, 2, 2, TARGET, TINY.num_heads, TINY.key_dim)
    # The encoder output may be given instead of the cross-attention cache.
    encoder_output = lm.encode(data["encoder_token_ids"], data["encoder_padding_mask"])
    first, _ = lm.call_with_cache(
        data["decoder_token_ids"][:, :1], lm.initial_cache(BATCH, TARGET), 0,
        encoder_padding_mask=data["encoder_padding_mask"], encoder_sequence_output=encoder_output,
    )
    assert_allclose(first[:, 0], full[:, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cross_attention_cache"):
        lm.call_with_cache(data["decoder_token_ids"][:, :1], lm.initial_cache(BATCH, TARGET), 0)


def test_cached_decoding_equals_full_forward_in_compiled_loop():
    """A traced cache index inside a jit-compiled fori_loop, one position past the target."""
    lm, data = tiny_lm("v1_1"), tiny_inputs(2)
    full = to_numpy(lm(data)["logits"])
    max_length = TARGET + 1  # a longer cache than the sequence: later slots stay masked
    padded = dict(data, decoder_token_ids=np.pad(data["decoder_token_ids"], ((0, 0), (0, 1))))

    def decode():
        step, state = _cached_logits(lm, padded, max_length)
        return ops.fori_loop(0, max_length, step, state)[1]

    logits = to_numpy(compiled(decode)())[:, :TARGET]
    real = data["decoder_padding_mask"].astype(bool)
    assert_allclose(logits[real], full[real], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ bad inputs


def test_bad_inputs_raise_clear_errors():
    lm, data = tiny_lm(), tiny_inputs()
    missing = {k: v for k, v in data.items() if k != "encoder_padding_mask"}
    with pytest.raises(ValueError, match=r"lack \['encoder_padding_mask'\]"):
        lm(missing)
    with pytest.raises(ValueError, match=r"inputs unexpected \['token_ids'\]"):
        lm.backbone({**data, "token_ids": data["decoder_token_ids"]})
    with pytest.raises(ValueError, match="takes a dict"):
        lm.backbone(data["encoder_token_ids"])
    bad = dict(data, decoder_token_ids=data["decoder_token_ids"].copy())
    bad["decoder_token_ids"][0, 2] = TINY.vocabulary_size
    with pytest.raises(ValueError, match=r"decoder_token_ids holds id 257 at index \(0, 2\), outside \[0, 257\)"):
        lm(bad)


# ------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize(
    "overrides",
    [{}, V1_1, {"num_decoder_layers": None, "key_dim": 5, "num_heads": 3}],
    ids=["v1_0", "v1_1", "symmetric"],
)
def test_parameter_formula_matches_built_models(overrides):
    config = TINY.replace(**overrides)
    model = tiny_lm(**overrides)
    assert model.count_params() == config.count_params(lm_head=True)
    assert model.backbone.count_params() == config.count_params()


PUBLISHED_MILLIONS = {  # as announced (rounded); v1.0 from the paper, v1.1 from the release notes
    "t5_small": 60, "t5_base": 220, "t5_large": 770,
    "t5_1_1_small": 77, "t5_1_1_base": 250, "t5_1_1_large": 780,
}


def test_preset_parameter_counts():
    counts = {name: get_preset(name).count_params(lm_head=True) for name in PUBLISHED_MILLIONS}
    assert counts["t5_small"] == 60_506_624
    for name, millions in PUBLISHED_MILLIONS.items():
        assert abs(counts[name] / 1e6 - millions) / millions < 0.05, (name, counts[name])
    # One real allocation of the smallest preset (60.5M float32 weights, ~240 MB).
    assert T5Backbone.from_preset("t5_small").count_params() == get_preset("t5_small").count_params()


# ------------------------------------------------------------------ training on real text

COPY_LENGTH = 24


def _copy_batches(documents, rows):
    """Byte ids (+1; 0 = pad and decoder start) of 24-byte chunks; the decoder rewrites the encoder's."""
    ids = np.frombuffer("\n".join(documents).encode("utf-8"), np.uint8).astype("int32") + 1
    chunks = ids[: (len(ids) // COPY_LENGTH) * COPY_LENGTH].reshape(-1, COPY_LENGTH)[:rows]
    x = {
        "encoder_token_ids": chunks,
        "encoder_padding_mask": np.ones(chunks.shape, "int32"),
        "decoder_token_ids": np.pad(chunks[:, :-1], ((0, 0), (1, 0))),  # start token 0, shifted right
        "decoder_padding_mask": np.ones(chunks.shape, "int32"),
    }
    return x, chunks


@pytest.mark.slow
def test_lm_learns_to_copy_english_text():
    """200 steps of a small v1.1-style T5 on stdlib docstrings, byte level."""
    keras.utils.set_random_seed(0)
    train_docs, validation_docs = split_documents(stdlib_documents(max_files=200))
    x, y = _copy_batches(train_docs, rows=200 * 32)
    x_val, y_val = _copy_batches(validation_docs, rows=256)
    lm = tiny_lm(
        "v1_1", hidden_dim=64, key_dim=16, intermediate_dim=128, num_layers=2, num_decoder_layers=2,
        relative_attention_num_buckets=16, relative_attention_max_distance=64,
    )
    lm.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01, clipnorm=1.0))

    def loss(inputs):
        return lm.evaluate(inputs, y_val, sample_weight=inputs["decoder_padding_mask"], verbose=0,
                           return_dict=True)["loss"]

    before = loss(x_val)
    started = time.time()
    lm.fit(x, y, sample_weight=x["decoder_padding_mask"], batch_size=32, epochs=1, verbose=0)
    seconds = time.time() - started
    after = loss(x_val)
    # The encoder carries the information: another row's encoder input is much worse.
    unrelated = loss(dict(x_val, encoder_token_ids=np.roll(x_val["encoder_token_ids"], 1, axis=0)))
    counts = np.bincount(y.ravel(), minlength=257)
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * np.log(p)).sum())
    print(f"copy loss {before:.3f} -> {after:.3f} nats/byte in {seconds:.1f}s (unrelated encoder input "
          f"{unrelated:.3f}, unigram entropy {unigram:.3f}, uniform {math.log(257):.3f})")
    assert after < unigram - 1.0
    assert after < unrelated - 0.5

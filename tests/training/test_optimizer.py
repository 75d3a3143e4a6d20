"""Learning-rate schedule, weight-decay exclusions, loss scaling."""

import keras
import numpy as np
import pytest

from keras_transformer.models import GPTCausalLM, T5Seq2SeqLM
from training.config import TrainConfig
from training.optimizer import AdamW, LossScaleOptimizer, build_optimizer, no_decay_variables, wrap_for_policy
from training.schedules import WarmupDecay


@pytest.mark.parametrize(
    "decay, expected",
    [
        # steps 0..3 warm up (peak * (step + 1) / 4), then p = (step - 4) / 8 over steps 4..12
        ("cosine", [0.25, 0.5, 0.75, 1.0, 1.0, 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5)), 0.1, 0.1]),
        ("linear", [0.25, 0.5, 0.75, 1.0, 1.0, 0.1 + 0.9 * 0.5, 0.1, 0.1]),
        ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_warmup_then_decay(decay, expected):
    schedule = WarmupDecay(1.0, total_steps=12, warmup_steps=4, decay=decay, final_ratio=0.1)
    steps = [0, 1, 2, 3, 4, 8, 12, 20]
    np.testing.assert_allclose([float(schedule(step)) for step in steps], expected, rtol=1e-6)
    assert WarmupDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="warmup_steps must be in \\[0, total_steps=10\\]; received 11"):
        WarmupDecay(1.0, total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="decay must be cosine, linear or constant"):
        WarmupDecay(1.0, total_steps=10, decay="step")


def test_no_decay_for_biases_norms_and_position_tables():
    excluded = {v.path for v in no_decay_variables(GPTCausalLM.from_preset("gpt2_tiny"))}
    assert "position_embedding/embeddings" in excluded
    assert {"decoder_norm/gamma", "decoder_norm/beta", "decoder_block_0/self_attention/query/bias"} <= excluded
    assert "token_embedding/embeddings" not in excluded
    assert not any(path.endswith("kernel") for path in excluded)
    t5 = {v.path for v in no_decay_variables(T5Seq2SeqLM.from_preset("t5_tiny"))}
    assert {"encoder_relative_position_bias/embeddings", "decoder_relative_position_bias/embeddings"} <= t5


def test_weight_decay_skips_the_excluded_variables():
    model = GPTCausalLM.from_preset("gpt2_tiny")
    config = TrainConfig(learning_rate=0.1, weight_decay=0.5, warmup_steps=0, decay="constant")
    optimizer = build_optimizer(config, model, total_steps=10)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    # Zero gradients: Adam moves nothing, so every change is weight decay, v -= lr * wd * v.
    optimizer.apply([np.zeros(v.shape, "float32") for v in model.trainable_variables], model.trainable_variables)
    excluded = {v.path for v in no_decay_variables(model)}
    for v in model.trainable_variables:
        factor = 1.0 if v.path in excluded else 1 - 0.1 * 0.5
        np.testing.assert_allclose(v.numpy(), before[v.path] * factor, rtol=1e-6, err_msg=v.path)


def _two_adam_steps(optimizer, gradients):
    variable = keras.Variable(np.zeros(2, "float32"))
    for gradient in gradients:
        optimizer.apply([np.asarray(gradient, "float32")], [variable])
    return variable.numpy()


def test_clipping_limits_the_global_norm_of_each_step():
    raw = [[3.0, 4.0], [0.3, 0.4]]  # norms 5 and 0.5: only the first is clipped to 1
    ours = _two_adam_steps(AdamW(learning_rate=0.1, weight_decay=0.0, global_clipnorm=1.0), raw)
    clipped_by_hand = _two_adam_steps(keras.optimizers.Adam(learning_rate=0.1), [[0.6, 0.8], [0.3, 0.4]])
    unclipped = _two_adam_steps(keras.optimizers.Adam(learning_rate=0.1), raw)
    np.testing.assert_allclose(ours, clipped_by_hand, rtol=1e-6)
    assert not np.allclose(ours, unclipped, rtol=1e-3)
    assert AdamW.from_config(AdamW(global_clipnorm=1.0).get_config()).summed_clipnorm == 1.0


def test_mixed_float16_wraps_in_the_replica_consistent_loss_scale_optimizer():
    inner = AdamW(learning_rate=1e-3)
    assert wrap_for_policy(inner, "float32") is inner and wrap_for_policy(inner, "mixed_bfloat16") is inner
    wrapped = wrap_for_policy(inner, "mixed_float16")
    assert isinstance(wrapped, LossScaleOptimizer) and wrapped.inner_optimizer is inner


def test_keras_itself_would_wrap_mixed_float16_models_in_its_loss_scale_optimizer():
    """What `build` relies on: Keras wraps under mixed_float16 unless it already is a LossScaleOptimizer
    (ours is one, with a replica-consistent overflow check)."""
    from keras_transformer.models import GPTBackbone, get_preset

    backbone = GPTBackbone(**get_preset("gpt2_tiny", "gpt").to_dict(), dtype="mixed_float16")
    model = GPTCausalLM(backbone, dtype="mixed_float16")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    assert type(model.optimizer) is keras.optimizers.LossScaleOptimizer
    ours = wrap_for_policy(AdamW(1e-3), "mixed_float16")
    model.compile(optimizer=ours)
    assert model.optimizer is ours

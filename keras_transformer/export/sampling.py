"""Next-token choice inside a served graph, with per-row sampling settings as tensors.

A SavedModel function is traced once, so sampling settings cannot be Python
values (keras-hub samplers hold them as attributes and keep their random state
in a variable, which concurrent requests would share). Here every setting is
a (batch,) tensor, one value per prompt, so rows of different requests that
the server batches together keep their own settings:

    temperature  float32  0 -> greedy (argmax of the raw logits); > 0 divides the logits
    top_k        int32    keep the k most likely tokens; 0 -> no limit
    top_p        float32  keep the smallest set of likeliest tokens whose mass reaches p
                          (after top_k); 1.0 -> no limit
    seed         int64    the row's random stream: token t of a row is drawn with
                          `stateless_uniform(seed=[seed, t])` Gumbel noise, so equal
                          requests give equal outputs whatever else is in the batch

Greedy rows take exactly the argmax of the model's logits, as
`keras_hub.samplers.GreedySampler` does.
"""

import tensorflow as tf

_TINY = 1e-20  # keeps log(u) finite for Gumbel noise u in (0, 1)


def gumbel_noise(seed, step, vocabulary_size):
    """(batch, vocab) float32 Gumbel(0, 1) noise; row r depends only on (seed[r], step)."""
    step = tf.cast(step, tf.int64)

    def row(row_seed):
        uniform = tf.random.stateless_uniform(
            [vocabulary_size], seed=tf.stack([row_seed, step]), minval=_TINY, maxval=1.0
        )
        return -tf.math.log(-tf.math.log(uniform))

    return tf.map_fn(row, seed, fn_output_signature=tf.float32)


def filtered_logits(logits, temperature, top_k, top_p):
    """Temperature-scaled logits with everything outside top-k / top-p set to -inf.

    logits (batch, vocab) float32; the settings (batch,). At least the most
    likely token always survives.
    """
    vocabulary_size = tf.shape(logits)[1]
    scaled = logits / tf.maximum(temperature, 1e-6)[:, None]
    ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")  # (batch, vocab)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)  # (batch,)
    ranks = tf.range(vocabulary_size)[None, :]
    in_top_k = ranks < k[:, None]
    probabilities = tf.nn.softmax(tf.where(in_top_k, ranked, -float("inf")), axis=-1)
    mass_before = tf.math.cumsum(probabilities, axis=-1, exclusive=True)
    kept = in_top_k & (mass_before < top_p[:, None])  # a prefix of the ranking
    count = tf.maximum(tf.reduce_sum(tf.cast(kept, tf.int32), axis=-1), 1)
    threshold = tf.gather(ranked, count - 1, batch_dims=1)  # smallest kept logit, (batch,)
    return tf.where(scaled >= threshold[:, None], scaled, -float("inf"))


def next_tokens(logits, settings, step):
    """(batch,) int32 next tokens from (batch, vocab) logits.

    Args:
        logits: float logits of the next position.
        settings: dict with `temperature`, `top_k`, `top_p`, `seed`, each (batch,).
        step: scalar int, the position being filled (part of the random stream).
    """
    logits = tf.cast(logits, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sampling = settings["temperature"] > 0  # (batch,)

    def sample():
        filtered = filtered_logits(logits, settings["temperature"], settings["top_k"], settings["top_p"])
        noise = gumbel_noise(settings["seed"], step, tf.shape(logits)[1])
        sampled = tf.argmax(filtered + noise, axis=-1, output_type=tf.int32)  # Gumbel-max: a softmax draw
        return tf.where(sampling, sampled, greedy)

    # An all-greedy batch skips the sort and the noise.
    return tf.cond(tf.reduce_any(sampling), sample, lambda: greedy)

"""Token choosers: processed (batch, vocab) scores -> next ids and their log-probabilities.

Two kinds plug into the decoding core:

* `SamplerChooser` wraps a keras-hub sampler (greedy, random, top-k, top-p),
  whose settings are Python values; used by `generate()`.
* `RowChooser` takes every setting as a (batch,) tensor, one value per row,
  so rows of different requests batched together by a server keep their own
  settings, and draws its randomness from a counter-based hash of
  (seed, step, id): stateless, equal on every backend, and equal requests
  give equal outputs whatever else is in the batch.

      temperature  float  0 -> greedy (argmax); > 0 divides the scores
      top_k        int    keep the k likeliest ids; 0 -> no limit
      top_p        float  keep the smallest set of likeliest ids whose mass
                          reaches p (after top_k); 1.0 -> no limit
      seed         int    the row's random stream

The log-probability reported for a chosen id is its log-softmax under the
scores the chooser saw, divided by the temperature (1 for greedy).
"""

import keras
import keras_hub
from keras import ops


def _log_prob(scores, tokens):
    log_probs = ops.log_softmax(scores, axis=-1)
    return ops.squeeze(ops.take_along_axis(log_probs, tokens[:, None], axis=1), axis=1)


class _StepSeed(keras.random.SeedGenerator):
    """A SeedGenerator whose `next()` returns the seed set for the current step and changes no state.

    Sampling inside the decoding loop must not advance a seed variable (JAX
    cannot carry that out of a traced loop body): the sampler's generator is
    advanced once, before the loop, and each step's seed is derived from that
    base and the step.
    """

    def __init__(self):
        super().__init__(seed=0)
        self.current = None

    def next(self, ordered=True):
        return self.current


_STEP_SEED = []


def _step_seed():
    if not _STEP_SEED:  # one, made eagerly (never inside a traced function)
        _STEP_SEED.append(_StepSeed())
    return _STEP_SEED[0]


class SamplerChooser:
    """Chooses with a keras-hub `Sampler` (its temperature included).

    A random sampler's seed generator is advanced once per decoding
    (`draw_seed()`, outside the loop); step t samples with that base seed + t,
    so seeded calls repeat exactly and every backend can trace the loop.
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self._step = _step_seed() if getattr(sampler, "seed_generator", None) is not None else None

    @property
    def variables(self):
        return list(self.sampler.variables)

    def draw_seed(self):
        """The base seed of one decoding (advances the sampler's generator), or None for greedy."""
        return None if self._step is None else self.sampler.seed_generator.next()

    def __call__(self, scores, step, seed=None):
        temperature = float(getattr(self.sampler, "temperature", 1.0))
        scaled = scores / temperature
        if type(self.sampler).__name__ == "GreedySampler":
            tokens = ops.cast(ops.argmax(scores, axis=-1), "int32")
        else:
            real = self.sampler.seed_generator
            if seed is not None:
                self._step.current = seed + ops.cast(ops.stack([0, ops.cast(step, "int32")]), seed.dtype)
                self.sampler.seed_generator = self._step
            try:
                tokens = ops.cast(self.sampler.get_next_token(ops.softmax(scaled, axis=-1)), "int32")
            finally:
                self.sampler.seed_generator = real
        return tokens, _log_prob(scaled, tokens)


def _hash(x):
    """A 32-bit integer mix (the murmur3 finalizer) in wrapping int32 arithmetic."""
    def shift(v, n):  # logical right shift of int32
        return ops.bitwise_and(ops.right_shift(v, n), (1 << (32 - n)) - 1)

    x = ops.bitwise_xor(x, shift(x, 16))
    x = x * ops.cast(-2048144789, "int32")  # 0x85ebca6b
    x = ops.bitwise_xor(x, shift(x, 13))
    x = x * ops.cast(-1028477387, "int32")  # 0xc2b2ae35
    return ops.bitwise_xor(x, shift(x, 16))


def gumbel_noise(seed, step, vocabulary_size):
    """(batch, vocab) float32 Gumbel(0, 1) noise; row r depends only on (seed[r], step)."""
    seed = ops.cast(seed, "int32")[:, None]
    ids = ops.arange(vocabulary_size, dtype="int32")[None, :]
    mixed = _hash(_hash(seed * 1000003 + ops.cast(step, "int32")) + ids * 7919)
    bits = ops.cast(ops.bitwise_and(ops.right_shift(mixed, 8), 0xFFFFFF), "float32")
    uniform = (bits + 0.5) / 16777216.0  # in (0, 1)
    return -ops.log(-ops.log(uniform))


def filtered_scores(scores, temperature, top_k, top_p):
    """Scores / temperature with everything outside top-k / top-p set to -inf (the best id survives)."""
    vocabulary_size = ops.shape(scores)[1]
    scaled = scores / ops.maximum(temperature, 1e-6)[:, None]
    ranked = ops.flip(ops.sort(scaled, axis=-1), axis=-1)  # descending
    k = ops.where(top_k > 0, ops.minimum(top_k, vocabulary_size), vocabulary_size)
    in_top_k = ops.arange(vocabulary_size)[None, :] < k[:, None]
    probabilities = ops.softmax(ops.where(in_top_k, ranked, -float("inf")), axis=-1)
    mass_before = ops.cumsum(probabilities, axis=-1) - probabilities
    kept = in_top_k & (mass_before < top_p[:, None])  # a prefix of the ranking
    count = ops.maximum(ops.sum(ops.cast(kept, "int32"), axis=-1), 1)
    threshold = ops.take_along_axis(ranked, (count - 1)[:, None], axis=1)  # smallest kept score
    return ops.where(scaled >= threshold, scaled, -float("inf"))


class RowChooser:
    """Per-row tensor settings (`temperature`, `top_k`, `top_p`, `seed`, each (batch,))."""

    variables = []

    def __init__(self, temperature, top_k, top_p, seed):
        self.temperature = ops.cast(temperature, "float32")
        self.top_k = ops.cast(top_k, "int32")
        self.top_p = ops.cast(top_p, "float32")
        self.seed = seed

    def draw_seed(self):
        return None  # each row's `seed` is an input

    def __call__(self, scores, step, seed=None):
        greedy = ops.cast(ops.argmax(scores, axis=-1), "int32")
        sampling = self.temperature > 0
        filtered = filtered_scores(scores, self.temperature, self.top_k, self.top_p)
        noise = gumbel_noise(self.seed, step, ops.shape(scores)[1])
        sampled = ops.cast(ops.argmax(filtered + noise, axis=-1), "int32")  # Gumbel-max: a softmax draw
        tokens = ops.where(sampling, sampled, greedy)
        scaled = scores / ops.where(sampling, self.temperature, 1.0)[:, None]
        return tokens, _log_prob(scaled, tokens)


def greedy_chooser():
    return SamplerChooser(keras_hub.samplers.GreedySampler())

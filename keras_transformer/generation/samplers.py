"""Sampling strategies: keras-hub's samplers, built from a name with validated arguments."""

import keras_hub

SAMPLERS = {
    "greedy": keras_hub.samplers.GreedySampler,
    "random": keras_hub.samplers.RandomSampler,
    "top_k": keras_hub.samplers.TopKSampler,
    "top_p": keras_hub.samplers.TopPSampler,
    "beam": keras_hub.samplers.BeamSampler,
}


def get_sampler(sampler="greedy", temperature=1.0, top_k=None, top_p=None, num_beams=None, seed=None):
    """A keras-hub `Sampler` from a name (or the instance itself, passed through).

    Args:
        sampler: "greedy", "random", "top_k", "top_p", "beam", or a
            `keras_hub.samplers.Sampler`.
        temperature: > 0; logits are divided by it before the softmax.
        top_k: k for "top_k" (and an optional pre-filter for "top_p"), > 0.
        top_p: nucleus mass for "top_p", in (0, 1].
        num_beams: beams for "beam", > 0.
        seed: seeds the random samplers, so a call is reproducible.
    """
    if isinstance(sampler, keras_hub.samplers.Sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid samplers: {sorted(SAMPLERS)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; received temperature={temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k must be a positive integer; received top_k={top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; received top_p={top_p!r}")
    if num_beams is not None and (not isinstance(num_beams, int) or num_beams <= 0):
        raise ValueError(f"num_beams must be a positive integer; received num_beams={num_beams!r}")
    kwargs = {"temperature": temperature}
    if sampler == "top_k":
        kwargs.update(k=top_k or 5, seed=seed)
    elif sampler == "top_p":
        kwargs.update(p=0.9 if top_p is None else top_p, k=top_k, seed=seed)
    elif sampler == "random":
        kwargs.update(seed=seed)
    elif sampler == "beam":
        kwargs.update(num_beams=num_beams or 4)
    return SAMPLERS[sampler](**kwargs)

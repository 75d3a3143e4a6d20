"""Independent NumPy float64 re-derivations of every formula the layers implement.

Nothing here imports Keras or the package: each function is written from the
published formula, so agreement with a layer is evidence, not tautology.
"""

import math

import numpy as np


def softmax(x, axis=-1):
    x = np.asarray(x, dtype="float64")
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


# --- attention ---


def attention(
    query,
    value,
    weights,
    num_heads,
    num_key_value_heads=None,
    mask=None,
    bias=None,
    use_scale=True,
    key=None,
):
    """Multi-head attention, float64, from the formula.

    weights: dict with q_kernel (d, heads, hd), q_bias (heads, hd), k_*, v_* (kv
    heads), o_kernel (heads, hd, out), o_bias (out); biases may be None; with
    g_kernel (d, heads, hd) and g_bias the heads are gated by a sigmoid of the
    query's projection (Keras' `use_gate`).
    mask: bool (batch, query, key) (True = attend); bias: additive, broadcastable
    to (batch, heads, query, key). Returns (output, probabilities).
    """
    key = value if key is None else key
    f = lambda a: None if a is None else np.asarray(a, dtype="float64")  # noqa: E731
    w = {name: f(array) for name, array in weights.items()}
    query, key, value = f(query), f(key), f(value)

    def project(x, kernel, b):
        y = np.einsum("btd,dnh->btnh", x, kernel)
        return y if b is None else y + b

    q = project(query, w["q_kernel"], w.get("q_bias"))
    k = project(key, w["k_kernel"], w.get("k_bias"))
    v = project(value, w["v_kernel"], w.get("v_bias"))
    kv = num_key_value_heads or num_heads
    group = num_heads // kv
    head_dim = q.shape[-1]
    outputs, probs = [], []
    for head in range(num_heads):
        kv_head = head // group  # query heads [g*group, (g+1)*group) share kv head g
        logits = np.einsum("bth,bsh->bts", q[:, :, head], k[:, :, kv_head])
        if use_scale:
            logits = logits / math.sqrt(head_dim)
        if bias is not None:
            b = np.broadcast_to(f(bias), (q.shape[0], num_heads) + logits.shape[1:])
            logits = logits + b[:, head]
        if mask is not None:
            logits = np.where(np.asarray(mask, dtype=bool), logits, -1e30)
        p = softmax(logits, axis=-1)
        probs.append(p)
        outputs.append(np.einsum("bts,bsh->bth", p, v[:, :, kv_head]))
    heads = np.stack(outputs, axis=2)  # (batch, query, heads, hd)
    if w.get("g_kernel") is not None:  # gated attention: sigmoid(query projection) * heads
        heads = heads / (1.0 + np.exp(-project(query, w["g_kernel"], w.get("g_bias"))))
    out = np.einsum("btnh,nho->bto", heads, w["o_kernel"])
    if w.get("o_bias") is not None:
        out = out + w["o_bias"]
    return out, np.stack(probs, axis=1)


def causal(query_length, key_length, start=0):
    """(query, key) bool: key j visible from query i iff j <= start + i."""
    return np.arange(key_length)[None, :] <= (start + np.arange(query_length))[:, None]

# --- positions ---


def sinusoidal_table(positions, dim, max_wavelength=10000):
    """(len(positions), dim): PE[p, 2i] = sin(p / w^(2i/dim)), PE[p, 2i+1] = cos(...)."""
    positions = np.asarray(positions, dtype="float64")
    table = np.zeros((len(positions), dim), dtype="float64")
    for i in range(dim // 2):
        denominator = float(max_wavelength) ** (2.0 * i / dim)
        table[:, 2 * i] = np.sin(positions / denominator)
        table[:, 2 * i + 1] = np.cos(positions / denominator)
    return table


def rotary(x, positions, max_wavelength=10000, scaling_factor=1.0):
    """RoPE, "rotate half" form, as explicit 2-D rotations.

    `x` is (batch, length, dim) or (batch, length, heads, dim); feature `i`
    and feature `i + dim/2` at position `p` are rotated by the angle
    `(p / scaling_factor) / max_wavelength^(2i/dim)`.
    """
    x = np.asarray(x, dtype="float64")
    dim = x.shape[-1]
    half = dim // 2
    out = np.empty_like(x)
    for t, p in enumerate(positions):
        for i in range(half):
            theta = (p / scaling_factor) / float(max_wavelength) ** (2.0 * i / dim)
            a, b = x[:, t, ..., i], x[:, t, ..., i + half]
            out[:, t, ..., i] = a * math.cos(theta) - b * math.sin(theta)
            out[:, t, ..., i + half] = b * math.cos(theta) + a * math.sin(theta)
    return out


def t5_relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """T5's bucket of each relative position (key - query), element by element."""

    def bucket_of(r):
        r = int(r)
        bucket, n = 0, num_buckets
        if bidirectional:
            n //= 2
            if r > 0:
                bucket += n
            r = abs(r)
        else:
            r = max(-r, 0)
        max_exact = n // 2
        if r < max_exact:
            return bucket + r
        scaled = math.log(r / max_exact) / math.log(max_distance / max_exact) * (n - max_exact)
        return bucket + min(max_exact + int(scaled), n - 1)

    rel = np.asarray(rel)
    return np.array([bucket_of(r) for r in rel.ravel()], dtype="int64").reshape(rel.shape)

# --- embeddings, feed-forward, norms ---


def gelu_exact(x):
    """GELU with the Gaussian CDF: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    x = np.asarray(x, dtype="float64")
    erf = np.vectorize(math.erf, otypes=["float64"])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = np.asarray(x, dtype="float64")
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    """x * sigmoid(x) (a.k.a. swish)."""
    x = np.asarray(x, dtype="float64")
    return x / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(np.asarray(x, dtype="float64"), 0.0)


FEED_FORWARD_ACTIVATIONS = {
    "relu": relu,
    "gelu": gelu_exact,
    "gelu_approximate": gelu_tanh,
    "silu": silu,
    "swish": silu,
}


def feed_forward(x, weights, activation, gated=False):
    """Position-wise feed-forward block, float64.

    weights: dict with intermediate_kernel (d, f), gate_kernel (d, f) when
    gated, output_kernel (f, o), and optional intermediate_bias, gate_bias,
    output_bias (missing or None = no bias). activation: a name in
    FEED_FORWARD_ACTIVATIONS or a NumPy function.
      plain: act(x W_i + b_i) W_o + b_o
      gated: (act(x W_g + b_g) * (x W_i + b_i)) W_o + b_o
    """
    act = FEED_FORWARD_ACTIVATIONS[activation] if isinstance(activation, str) else activation
    w = {k: None if v is None else np.asarray(v, dtype="float64") for k, v in weights.items()}
    x = np.asarray(x, dtype="float64")

    def dense(inputs, name):
        y = inputs @ w[f"{name}_kernel"]
        bias = w.get(f"{name}_bias")
        return y if bias is None else y + bias

    if gated:
        hidden = act(dense(x, "gate")) * dense(x, "intermediate")
    else:
        hidden = act(dense(x, "intermediate"))
    return dense(hidden, "output")


def rms_norm(x, scale, eps, axis=-1):
    """x / sqrt(mean(x^2 over `axis`) + eps) * scale (scale broadcast along `axis`)."""
    x = np.asarray(x, dtype="float64")
    scale = np.asarray(scale, dtype="float64")
    rms = np.sqrt(np.mean(x * x, axis=axis, keepdims=True) + eps)
    shape = [1] * x.ndim
    shape[axis] = -1
    return x / rms * scale.reshape(shape)


# --- blocks ---


def layer_norm(x, gamma, beta, eps):
    x = np.asarray(x, dtype="float64")
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(gamma, "float64") + np.asarray(beta, "float64")


def transformer_block(
    x,
    weights,
    num_heads,
    normalize_first,
    normalization,
    eps,
    activation,
    gated=False,
    num_key_value_heads=None,
    use_scale=True,
    mask=None,
    bias=None,
    encoder=None,
    cross_mask=None,
):
    """One encoder block (or decoder block when `encoder` is given), float64.

    weights: {"self_attention": attention weights (see `attention`),
    "cross_attention": ..., "feed_forward": feed-forward weights,
    "<sublayer>_norm": (gamma, beta) for LayerNorm or (scale,) for RMSNorm}.
    Pre-norm: h + f(norm(h)); post-norm: norm(h + f(h)).
    """

    def norm(h, name):
        params = weights[name]
        if normalization == "rms_norm":
            return rms_norm(h, params[0], eps)
        return layer_norm(h, params[0], params[1], eps)

    def residual(h, name, branch):
        y = branch(norm(h, name) if normalize_first else h)
        return h + y if normalize_first else norm(h + y, name)

    heads = dict(num_heads=num_heads, num_key_value_heads=num_key_value_heads, use_scale=use_scale)
    h = residual(
        x,
        "self_attention_norm",
        lambda y: attention(y, y, weights["self_attention"], mask=mask, bias=bias, **heads)[0],
    )
    if encoder is not None:
        h = residual(
            h,
            "cross_attention_norm",
            lambda y: attention(y, encoder, weights["cross_attention"], mask=cross_mask, **heads)[0],
        )
    return residual(
        h, "feed_forward_norm", lambda y: feed_forward(y, weights["feed_forward"], activation, gated)
    )

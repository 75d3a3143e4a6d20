"""BERT masked language model (optionally with the next-sentence head of pre-training)."""

import keras
from keras import ops

from keras_transformer.layers.feed_forward import _resolve_activation
from keras_transformer.models.backbone import token_cross_entropy, token_metrics
from keras_transformer.models.bert._bert_task import BertTask
from keras_transformer.models.bert.bert_backbone import bert_initializer
from keras_transformer.models.bert.bert_output_bias import BertOutputBias
from keras_transformer.registration import register


@register
class BertMaskedLM(BertTask):
    """Predicts the tokens at `mask_positions` from the BERT encoder's output.

    Head (as in BERT): gather the hidden states at the masked positions,
    dense + activation (the backbone's, exact GELU) + LayerNorm, then the
    token embedding used in reverse (tied weights) plus a per-token output
    bias. With `next_sentence_prediction=True` a 2-way dense on the pooled
    output gives the next-sentence logits ("is segment B the real
    continuation of A?", class 0 = yes, as in Hugging Face).

    Sublayers: `backbone`, `mlm_dense`, `mlm_layer_norm`, `mlm_output_bias`
    and, with the flag, `next_sentence_dense`.

    Args:
        backbone: a `BertBackbone`; its layers (the token embedding included)
            are shared, not copied.
        next_sentence_prediction: bool, add the next-sentence head.

    Inputs (dict): the backbone's `token_ids`, `segment_ids`, `padding_mask`,
    plus `mask_positions` (batch, num_masked) int indices into the sequence
    (pad unused slots with any valid index, e.g. 0, and give them
    sample weight 0).
    Outputs (dict): `logits` (batch, num_masked, vocabulary_size) and, with
    the flag, `next_sentence_logits` (batch, 2).

    `compile()` defaults: AdamW(5e-5, weight decay 0.01), sparse categorical
    cross-entropy from logits per output (the MLM loss averaged over the
    weighted slots only, so a batch's exp(loss) is its perplexity), weighted accuracy and
    `keras_hub.metrics.Perplexity` on the MLM logits. Pass the masked-slot
    weights as `sample_weight` so padded slots count for nothing.

    Example:
    >>> model = BertMaskedLM(BertBackbone.from_preset("bert_test"))
    >>> model({"token_ids": ids, "segment_ids": segments, "padding_mask": mask,
    ...        "mask_positions": np.array([[1, 4]])})["logits"].shape
    (1, 2, 260)
    """

    def __init__(self, backbone, next_sentence_prediction=False, **kwargs):
        if not isinstance(next_sentence_prediction, bool):
            raise ValueError(
                "next_sentence_prediction must be a bool; received "
                f"next_sentence_prediction={next_sentence_prediction!r}"
            )
        config = backbone.model_config
        dtype = backbone.dtype_policy

        # === Layers ===
        self.backbone = backbone
        self.mlm_dense = keras.layers.Dense(
            config.hidden_dim,
            activation=_resolve_activation(config.activation),  # the backbone's (exact GELU)
            kernel_initializer=bert_initializer(),
            dtype=dtype,
            name="mlm_dense",
        )
        self.mlm_layer_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_epsilon, dtype=dtype, name="mlm_layer_norm"
        )
        self.mlm_output_bias = BertOutputBias(dtype=dtype, name="mlm_output_bias")
        self.next_sentence_dense = None
        if next_sentence_prediction:
            self.next_sentence_dense = keras.layers.Dense(
                2, kernel_initializer=bert_initializer(), dtype=dtype, name="next_sentence_dense"
            )

        # === Functional model ===
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
            "mask_positions": keras.Input((None,), dtype="int32", name="mask_positions"),
        }
        encoded = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
        # (batch, num_masked, hidden): the hidden state at each masked position.
        x = ops.take_along_axis(
            encoded["sequence_output"], ops.expand_dims(inputs["mask_positions"], -1), axis=1
        )
        x = self.mlm_layer_norm(self.mlm_dense(x))
        logits = backbone.token_embedding(x, reverse=True)  # tied: x @ word_embeddings.T
        outputs = {"logits": self.mlm_output_bias(logits)}
        if next_sentence_prediction:
            outputs["next_sentence_logits"] = self.next_sentence_dense(encoded["pooled_output"])
        super().__init__(backbone, inputs=inputs, outputs=outputs, **kwargs)
        self.next_sentence_prediction = next_sentence_prediction

    def compile_defaults(self):
        """`compile()`'s "auto" arguments (see the class docstring), per output."""
        nsp = self.next_sentence_prediction

        def loss():
            losses = {"logits": token_cross_entropy()}  # mean over the weighted (masked) slots
            if nsp:
                losses["next_sentence_logits"] = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            return losses

        def weighted_metrics():
            metrics = {"logits": token_metrics()}
            if nsp:
                metrics["next_sentence_logits"] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
            return metrics

        return {
            "optimizer": lambda: keras.optimizers.AdamW(5e-5, weight_decay=0.01),
            "loss": loss,
            "weighted_metrics": weighted_metrics,
        }

    def get_config(self):
        config = super().get_config()
        config["next_sentence_prediction"] = self.next_sentence_prediction
        return config

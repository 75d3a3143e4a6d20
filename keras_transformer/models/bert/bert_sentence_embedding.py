"""Sentence embeddings: BERT's sequence output averaged over the real tokens."""

import keras
from keras import ops

from keras_transformer.models.bert._bert_task import BertTask
from keras_transformer.registration import register


@register
class BertSentenceEmbedding(BertTask):
    """Mean pooling over real tokens (Sentence-BERT style), optionally L2-normalised.

    embeddings = sum_t(mask_t * h_t) / max(sum_t mask_t, 1), with the mask
    taken from `padding_mask`, so padding never moves an embedding (a row of
    only padding gives zeros). With `normalize=True` each embedding is scaled
    to unit L2 norm, so dot products are cosine similarities.

    The model has no weights beyond the backbone's and no default loss:
    compile it with a similarity or contrastive loss of your choice.

    Args:
        backbone: a `BertBackbone` (shared, not copied).
        normalize: bool, L2-normalise the embeddings.

    Inputs (dict): `token_ids`, `segment_ids`, `padding_mask` (batch, length).
    Outputs (dict): `embeddings` (batch, hidden_dim).

    Example: padding_mask `[[1, 1, 0]]` averages the first two hidden states.
    """

    def __init__(self, backbone, normalize=False, **kwargs):
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be a bool; received normalize={normalize!r}")

        # === Functional model ===
        self.backbone = backbone
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        }
        sequence = backbone(inputs)["sequence_output"]  # (batch, length, hidden)
        mask = ops.expand_dims(ops.cast(inputs["padding_mask"], sequence.dtype), -1)
        total = ops.sum(sequence * mask, axis=1)  # (batch, hidden)
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)  # (batch, 1); >= 1 avoids 0 / 0
        embeddings = total / count
        if normalize:
            embeddings = ops.normalize(embeddings, axis=-1, order=2)
        super().__init__(backbone, inputs=inputs, outputs={"embeddings": embeddings}, **kwargs)
        self.normalize = normalize

    def get_config(self):
        config = super().get_config()
        config["normalize"] = self.normalize
        return config

"""Public Keras layers. Each is registered as `keras_transformer>ClassName`."""

# --- attention ---
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
# --- positions ---
from keras_transformer.layers.learned_position_embedding import LearnedPositionEmbedding
from keras_transformer.layers.relative_position_bias import RelativePositionBias
from keras_transformer.layers.rotary_embedding import RotaryEmbedding
from keras_transformer.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
# --- embeddings, feed-forward, norms ---
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.reversible_embedding import ReversibleEmbedding
from keras_transformer.layers.rms_norm import RMSNorm
from keras_transformer.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_transformer.layers.patch_embedding import PatchEmbedding
# --- blocks ---
from keras_transformer.layers.transformer_decoder_block import TransformerDecoderBlock
from keras_transformer.layers.transformer_encoder_block import TransformerEncoderBlock

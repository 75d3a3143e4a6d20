"""Text: corpora, tokenizers (keras-hub) and tf.data pipelines per training objective.

`import keras_transformer.text` imports neither TensorFlow nor keras-hub. The
corpus functions are plain Python; the names below that need TensorFlow are
loaded on first use (`from keras_transformer.text import causal_lm_dataset`
imports TensorFlow then), or import them from their modules:

    from keras_transformer.text.corpus import read_text_files, stdlib_documents, split_documents
    from keras_transformer.text.tokenizers import train_tokenizer, save_tokenizer, load_tokenizer
    from keras_transformer.text.datasets import masked_lm_dataset, causal_lm_dataset, span_corruption_dataset
    from keras_transformer.text.supervised import classification_dataset, text_to_text_dataset
    from keras_transformer.text.squad import read_squad, squad_scores                 # SQuAD v1.1, no TensorFlow
    from keras_transformer.text.question_answering import question_answering_dataset, predict_answers
    from keras_transformer.text.offsets import tokenize_with_offsets
    from keras_transformer.text.inspection import format_sample, print_sample
"""

from keras_transformer._lazy import lazy_attributes

from keras_transformer.text.corpus import ReadStats, read_text_files, split_documents, stdlib_documents
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.squad import QAExample, read_squad, squad_scores

# name -> module (under keras_transformer.text) that defines it; these import TensorFlow.
_LAZY = {
    "train_tokenizer": "tokenizers",
    "save_tokenizer": "tokenizers",
    "load_tokenizer": "tokenizers",
    "tokenizer_kind": "tokenizers",
    "refresh_graph_resources": "tokenizers",
    "SpecialByteTokenizer": "special_byte_tokenizer",
    "masked_lm_dataset": "datasets",
    "causal_lm_dataset": "datasets",
    "span_corruption_dataset": "datasets",
    "classification_dataset": "supervised",
    "text_to_text_dataset": "supervised",
    "QASettings": "question_answering",
    "question_answering_dataset": "question_answering",
    "predict_answers": "question_answering",
    "best_answer": "question_answering",
    "tokenize_with_offsets": "offsets",
    "pack_token_sequences": "packing",
    "format_sample": "inspection",
    "print_sample": "inspection",
}

__all__ = ["QAExample", "ReadStats", "SpecialTokens", "read_squad", "read_text_files", "split_documents",
           "squad_scores", "stdlib_documents", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

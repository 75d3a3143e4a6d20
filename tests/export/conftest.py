"""Shared exports for the export tests: one tiny model per family, exported once per session.

Each fixture gives `(model, tokenizer, version_dir)`. Model vocabularies equal
their tokenizer's, so greedy `generate` can be compared with `model.generate`.
"""

import keras
import pytest

from keras_transformer.text.corpus import stdlib_documents


@pytest.fixture(scope="session")
def export_root(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def documents():
    return stdlib_documents(max_files=40)[:300]


@pytest.fixture(scope="session")
def wordpiece(documents):
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("wordpiece", documents[:150], 400)


@pytest.fixture(scope="session")
def sentencepiece(documents):
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("sentencepiece", documents, 400)


@pytest.fixture(scope="session")
def byte_tokenizer():
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("bytes", num_sentinels=0)


def _export(model, root, name, tokenizer, **kwargs):
    from keras_transformer.export import export

    return export(model, str(root / name), tokenizer=tokenizer, **kwargs)


@pytest.fixture(scope="session")
def gpt_export(export_root, byte_tokenizer):
    from keras_transformer.models import GPTCausalLM

    keras.utils.set_random_seed(3)
    model = GPTCausalLM.from_preset("gpt2_tiny", backbone_overrides={"vocabulary_size": byte_tokenizer.vocabulary_size()})
    return model, byte_tokenizer, _export(model, export_root, "gpt", byte_tokenizer, model_name="gpt")


@pytest.fixture(scope="session")
def t5_export(export_root, sentencepiece):
    from keras_transformer.models import T5Seq2SeqLM

    keras.utils.set_random_seed(4)
    model = T5Seq2SeqLM.from_preset("t5_tiny", backbone_overrides={"vocabulary_size": sentencepiece.vocabulary_size()})
    return model, sentencepiece, _export(model, export_root, "t5", sentencepiece)


@pytest.fixture(scope="session")
def bert_backbone(wordpiece):
    from keras_transformer.models import BertBackbone

    keras.utils.set_random_seed(5)
    return BertBackbone.from_preset("bert_test", vocabulary_size=wordpiece.vocabulary_size())


@pytest.fixture(scope="session")
def classifier_export(export_root, wordpiece, bert_backbone):
    from keras_transformer.models import BertClassifier

    model = BertClassifier(bert_backbone, num_classes=3)
    return model, wordpiece, _export(model, export_root, "classifier", wordpiece, labels=["neg", "neutral", "pos"])


@pytest.fixture(scope="session")
def masked_lm_export(export_root, wordpiece, bert_backbone):
    from keras_transformer.models import BertMaskedLM

    model = BertMaskedLM(bert_backbone)
    return model, wordpiece, _export(model, export_root, "masked_lm", wordpiece, signatures=["fill_mask"],
                                     fill_mask_top_k=3)

"""Every public model, saved as `.keras`, loads in a new interpreter that imports only
`keras_transformer` (no `custom_objects`), as the same class with the same weights
(each family's own tests reload in-process and compare outputs).

One process loads them all: starting an interpreter costs more than the checks."""

from tests.layers import test_saving as layer_models
from tests.models import test_bert, test_gpt, test_t5, test_vit
from tests.test_case import run_fresh_process_loading_test

from keras_transformer.models.vit import ViTBackbone, ViTImageClassifier


def test_every_model_loads_in_a_fresh_process_with_only_the_package_imported():
    cases = {f"bert_{name}": test_bert.task_case(name)[0] for name in test_bert.TASKS}
    cases["gpt_causal_lm"] = test_gpt.tiny_lm(**test_gpt.VARIANTS["gqa_untied"])
    for style in sorted(test_t5.STYLES):
        cases[f"t5_{style}"] = test_t5.tiny_lm(style)
    cases["vit_classifier"] = ViTImageClassifier(ViTBackbone(**test_vit.TINY, use_pooler=False), num_classes=3)
    cases["layers_seq2seq"] = layer_models.build_seq2seq()
    run_fresh_process_loading_test(cases)

"""Tiny SavedModels for the serving tests, built with tf.Module + tf.function only.

`lm` (vocabulary 16, width 4; the weights depend on the version, so answers
tell versions apart):
  serving_default  token_ids int32 [B, T]            -> logits float32 [B, T, 16] = W[ids] @ W.T
  pair             token_ids int32 [B, T], scale [B] -> logits * scale, total = sum(ids) * scale
  generate         prompts string [B]                -> text = upper(prompt) + " v<version>",
                                                        length int32, echo_bytes (the prompt bytes)
  slow             seconds float32 [B]               -> waited: busy-waits max(seconds)
`txt` (a tensorflow-text op, which tensorflow_model_server has built in):
  serving_default  text string [B]                   -> normalized: NFKC normalize_utf8(text)
`clf` (tf.Example inputs, the TF Serving classify/regress conventions):
  serving_default  inputs string [B] (x: float[2])  -> classes [B, 2] ("neg", "pos"), scores [B, 2]
  regress          inputs string [B] (x, bias=0)    -> outputs [B] = 2 x0 + x1 + bias
"""

import os
import shutil

import numpy as np
import tensorflow as tf

VOCABULARY_SIZE, WIDTH = 16, 4


def lm_weights(version):
    return np.random.RandomState(version).randn(VOCABULARY_SIZE, WIDTH).astype("float32")


def lm_logits(version, token_ids):
    """The numpy reference for `lm`'s serving_default."""
    weights = lm_weights(version)
    return weights[np.asarray(token_ids)] @ weights.T


class _LM(tf.Module):
    def __init__(self, version):
        super().__init__()
        self.version = version
        self.weights = tf.Variable(lm_weights(version))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def logits(self, token_ids):
        embedded = tf.gather(self.weights, token_ids)  # (batch, time, width)
        return {"logits": tf.einsum("btd,vd->btv", embedded, self.weights)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                                  tf.TensorSpec([None], tf.float32, name="scale")])
    def pair(self, token_ids, scale):
        logits = self.logits(token_ids)["logits"] * scale[:, None, None]
        total = tf.reduce_sum(tf.cast(token_ids, tf.float32), axis=1) * scale
        return {"logits": logits, "total": total}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def generate(self, prompts):
        text = tf.strings.join([tf.strings.upper(prompts), f" v{self.version}"])
        return {"text": text, "length": tf.strings.length(prompts), "echo_bytes": prompts}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
    def slow(self, seconds):
        start = tf.timestamp()
        limit = tf.cast(tf.reduce_max(seconds), tf.float64)
        tf.while_loop(lambda i: tf.timestamp() - start < limit, lambda i: i + 1, [tf.constant(0)])
        return {"waited": tf.cast(tf.timestamp() - start, tf.float32) + 0.0 * seconds}


class _Classifier(tf.Module):
    def _parse(self, inputs):
        spec = {"x": tf.io.FixedLenFeature([2], tf.float32),
                "bias": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}
        return tf.io.parse_example(inputs, spec)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = self._parse(inputs)["x"]
        margin = x[:, 0] - x[:, 1]
        scores = tf.stack([tf.sigmoid(-margin), tf.sigmoid(margin)], axis=1)
        classes = tf.tile(tf.constant([["neg", "pos"]]), [tf.shape(x)[0], 1])
        return {"classes": classes, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        features = self._parse(inputs)
        x = features["x"]
        return {"outputs": 2.0 * x[:, 0] + x[:, 1] + features["bias"][:, 0]}


class _Text(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def normalize(self, text):
        import tensorflow_text

        return {"normalized": tensorflow_text.normalize_utf8(text, "NFKC")}


def build_text(path):
    module = _Text()
    tf.saved_model.save(module, path, signatures={"serving_default": module.normalize})
    return path


def build_lm(path, version):
    module = _LM(version)
    signatures = {"serving_default": module.logits, "pair": module.pair, "generate": module.generate,
                  "slow": module.slow}
    tf.saved_model.save(module, path, signatures=signatures)
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    return path


def build_classifier(path):
    module = _Classifier()
    tf.saved_model.save(module, path, signatures={"serving_default": module.classify, "regress": module.regress})
    return path


def install(source, base_path, version, via_temp=True):
    """Copies a built version into base_path/<version>, the way an exporter should:
    first under a non-numeric temporary name, then an atomic rename."""
    os.makedirs(base_path, exist_ok=True)
    target = os.path.join(base_path, str(version))
    if not via_temp:
        shutil.copytree(source, target)
        return target
    temporary = os.path.join(base_path, f"tmp-export-{version}")
    shutil.copytree(source, temporary)
    os.rename(temporary, target)
    return target


def build_half_plus_two_tf1(path, a=0.5, b=2.0):
    """A TF1 SavedModel like TF Serving's saved_model_half_plus_two / half_plus_three test models.

    Built with tf.compat.v1 (placeholders, variables, a Session, SavedModelBuilder;
    no object graph). y = a * x + b:
      serving_default              x float [-1, 1] -> y          (predict; elementwise, so [3] works too)
      tensorflow/serving/regress   inputs (tf.Example with x)  -> outputs [B, 1] (ParseExample in the graph)
      tensorflow/serving/classify  inputs (tf.Example with x)  -> scores [B, 1], classes [B, 1] ("y")
    """
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        weight, bias = v1.Variable(a, name="a"), v1.Variable(b, name="b")
        x = v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.add(weight * x, bias, name="y")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = v1.parse_example(serialized, {"x": v1.FixedLenFeature([1], tf.float32)})
        y_examples = tf.add(weight * parsed["x"], bias, name="y_examples")
        classes = tf.tile(tf.constant([["y"]]), [tf.shape(y_examples)[0], 1])
        session.run(v1.global_variables_initializer())
        signatures = v1.saved_model.signature_def_utils
        builder = v1.saved_model.builder.SavedModelBuilder(path)
        builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING], signature_def_map={
            "serving_default": signatures.predict_signature_def({"x": x}, {"y": y}),
            "tensorflow/serving/regress": signatures.regression_signature_def(serialized, y_examples),
            "tensorflow/serving/classify": signatures.classification_signature_def(serialized, classes, y_examples),
        })
        builder.save()
    return path

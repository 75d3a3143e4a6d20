"""The training configuration: one dataclass, every default commented, checked on creation.

The CLI (`training.cli`) builds its options from these fields (`--batch-size`
for `batch_size`, `--no-overwrite` for booleans, ...), so the help text and the
defaults live here only. A JSON file of the same fields (`--config run.json`,
or the `run_config.json` a run writes) gives the same configuration.
"""

import dataclasses
import json
import os

TASKS = ("pretrain", "classify", "text-to-text", "classify-images", "qa")
FAMILIES = ("gpt", "bert", "t5", "vit")
DEFAULT_PRESETS = {"gpt": "gpt2_tiny", "bert": "bert_tiny", "t5": "t5_tiny", "vit": "vit_tiny"}
TASK_FAMILIES = {"classify": "bert", "text-to-text": "t5", "classify-images": "vit", "qa": "bert"}  # tasks of one family
TEXT_OPTIONS = ("document_per", "tokenizer", "tokenizer_kind", "vocabulary_size", "sequence_length",
                "target_length")  # not for classify-images
IMAGE_OPTIONS = ("image_size", "random_flip")  # for classify-images only
DEFAULT_LEARNING_RATE = 5e-3
TASK_LEARNING_RATES = {"classify-images": 1e-3}
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DECAYS = ("cosine", "linear", "constant")
TOKENIZER_KINDS = ("bytes", "wordpiece", "sentencepiece")
# Fields a resumed run may change without invalidating its checkpoints.
RESUMABLE_CHANGES = ("verbose", "overwrite", "keep_checkpoints", "log_every", "skip_bad_files")


def _field(default, help, **metadata):
    factory = {"default_factory": lambda: type(default)(default)} if isinstance(default, (list, dict)) else {
        "default": default}
    return dataclasses.field(metadata={"help": help, **metadata}, **factory)


@dataclasses.dataclass
class TrainConfig:
    """What to train, on what, how, and where the results go (see each field's help)."""

    # --- what to train -------------------------------------------------------
    task: str = _field("pretrain", "pretrain (objective by family: causal LM, masked LM, span corruption), "
                       "classify (BERT, label<TAB>text lines), text-to-text (T5, source<TAB>target lines) or "
                       "classify-images (ViT, one sub-folder per class) or qa (BERT, SQuAD v1.1 JSON); set by the subcommand",
                       choices=TASKS, cli=False)
    family: str = _field(None, "model family; default: gpt (classify: bert, text-to-text: t5, classify-images: "
                         "vit, qa: bert), or the --init model's family", choices=FAMILIES)
    preset: str = _field(None, "model preset of the family (keras_transformer.models.list_presets()); "
                         "default: gpt2_tiny / bert_tiny / t5_tiny / vit_tiny")
    model_options: dict = _field({}, "override a preset's config field, KEY=VALUE (JSON value), repeatable: "
                                 "--model-option num_layers=4", cli="--model-option")
    init: str = _field(None, "start from these weights: a finished run's OUTPUT folder, a .keras file, "
                       "or a Hugging Face folder (config.json + model.safetensors)")
    # --- data ------------------------------------------------------------------
    data: list = _field([], "training text: files, globs or folders (.txt / .txt.gz, UTF-8); default: the "
                        "built-in corpus (pretrain) or the built-in QA sample (qa; SQuAD JSON files). classify-images: one FOLDER with a sub-folder of "
                        ".jpg/.jpeg/.png images per class; default: the built-in synthetic shapes")
    validation_data: list = _field([], "validation text (or image FOLDER), as --data; default: a hash-split "
                                   "share of --data (qa: of its paragraphs; the built-in sample has its own)")
    validation_fraction: float = _field(0.05, "share of the documents (lines, images) held out for validation "
                                        "when --validation-data is not given")
    document_per: str = _field("line", "pretraining text: one document per line or per file",
                               choices=("line", "file"))
    skip_bad_files: bool = _field(False, "skip (and count) empty, binary or non-UTF-8 files (images: empty, "
                                  "not JPEG/PNG or corrupt ones) instead of stopping")
    labels: list = _field([], "classify, classify-images: the class names, in class-id order; default: the "
                          "sorted labels (image sub-folder names) found in --data, or the --init classifier's")
    # --- images ------------------------------------------------------------------
    image_size: int = _field(None, "classify-images: side, in pixels, that every image is resized to (the "
                             "model's image_size); default: the preset's (vit_tiny: 32) or the --init model's")
    random_flip: bool = _field(False, "classify-images: flip training images left-right at random (a function "
                               "of --seed and the step, so resumed runs see the same flips)")
    # --- question answering ------------------------------------------------------
    doc_stride: int = _field(None, "qa: context tokens between the starts of overlapping windows of a long "
                             "context; default: half the --sequence-length")
    max_question_length: int = _field(None, "qa: question tokens kept (the rest is cut); default: a quarter of "
                                      "the --sequence-length")
    max_answer_length: int = _field(None, "qa: longest answer, in tokens, when reading answers (evaluation, "
                                    "export); default: 30")
    # --- tokenizer ---------------------------------------------------------------
    tokenizer: str = _field(None, "a saved tokenizer folder; default: the --init run's tokenizer, "
                            "else one trained on --data")
    tokenizer_kind: str = _field(None, "kind of tokenizer to train (bytes needs no training); default: bytes "
                                 "(qa: wordpiece, whose words keep questions short)", choices=TOKENIZER_KINDS)
    vocabulary_size: int = _field(8000, "largest vocabulary for wordpiece / sentencepiece")
    # --- shapes ----------------------------------------------------------------
    sequence_length: int = _field(None, "tokens per row (T5: encoder tokens); default: 64 (qa: 128), "
                                  "at most the preset's max_sequence_length")
    target_length: int = _field(None, "T5 decoder tokens; default: what span corruption needs, "
                                "or --sequence-length for text-to-text")
    batch_size: int = _field(32, "global batch size, split evenly across replicas")
    # --- optimisation ------------------------------------------------------------
    steps: int = _field(600, "optimizer steps in all (ignored when --epochs is given)")
    epochs: float = _field(None, "passes over the training data instead of --steps (counts the batches once)")
    learning_rate: float = _field(None, "peak learning rate, reached after the warm-up; default: 5e-3 "
                                  "(classify-images: 1e-3; vision transformers trained from scratch need less)")
    warmup_steps: int = _field(None, "linear warm-up steps from 0; default: 5%% of the steps")
    decay: str = _field("cosine", "decay after the warm-up, down to --final-learning-rate-ratio", choices=DECAYS)
    final_learning_rate_ratio: float = _field(0.1, "last learning rate as a fraction of the peak")
    weight_decay: float = _field(0.01, "AdamW decoupled weight decay; not applied to biases, norms "
                                 "and position tables")
    clip_norm: float = _field(1.0, "clip the global gradient norm (of the whole global batch) to this; 0: off")
    # --- performance -------------------------------------------------------------
    lora_rank: int = _field(0, "LoRA: freeze the backbone, train rank-R adapters on the attention query and "
                            "value projections (the task head trains in full); 0: full fine-tuning")
    precision: str = _field("float32", "dtype policy (mixed_float16 adds dynamic loss scaling)",
                            choices=PRECISIONS)
    jit_compile: str = _field("auto", "XLA: auto (Keras decides: on for GPU/TPU), true or false",
                              choices=("auto", "true", "false"))
    steps_per_execution: int = _field(1, "train steps per compiled call (must divide the checkpoint interval)")
    strategy: str = _field("default", "distribution: default (one device), mirrored (local GPUs), "
                           "multi_worker (TF_CONFIG), tpu", choices=STRATEGIES)
    cpu_devices: int = _field(0, "with --strategy mirrored: split the CPU into this many logical devices "
                              "(for testing without GPUs); 0: use the GPUs")
    tpu: str = _field("", "TPU name or grpc:// address for --strategy tpu; empty: the local TPU VM")
    # --- checkpoints, logs, output ------------------------------------------------
    output: str = _field(None, "run folder; default: runs/<family> (pretrain) or runs/<family>-<task>")
    checkpoint_every: int = _field(100, "checkpoint (and validate) every this many steps, and at the end")
    keep_checkpoints: int = _field(2, "checkpoints kept (older ones are deleted)")
    validation_steps: int = _field(None, "validation batches per check; default: the whole validation set")
    log_every: int = _field(10, "TensorBoard training scalars every this many steps")
    overwrite: bool = _field(False, "delete an earlier run in --output instead of resuming it")
    seed: int = _field(0, "seed of the weights and of the data order")
    deterministic: bool = _field(False, "deterministic TensorFlow ops (slower; bit-repeatable runs)")
    verbose: int = _field(None, "0 silent, 1 progress bar, 2 one line per checkpoint; default: 1 on a "
                          "terminal, else 2", choices=(0, 1, 2))

    def __post_init__(self):
        if self.learning_rate is None:  # the task's default, stored as a number (run_config.json)
            self.learning_rate = TASK_LEARNING_RATES.get(self.task, DEFAULT_LEARNING_RATE)
        self.validate()

    # ----------------------------------------------------------------- checks

    def validate(self):
        """Raises a ValueError naming the option and the value received."""
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            value = getattr(self, field.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{_flag(field.name)} must be one of {list(choices)}; received {value!r}")
        positive = ["batch_size", "steps", "checkpoint_every", "keep_checkpoints", "steps_per_execution",
                    "log_every", "vocabulary_size"]
        qa_options = ["doc_stride", "max_question_length", "max_answer_length"]
        optional_positive = ["sequence_length", "target_length", "validation_steps"] + qa_options
        for name in positive + optional_positive:
            value = getattr(self, name)
            if value is None and name in optional_positive:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be a positive integer; received {value!r}")
        for name in ("learning_rate",):
            if not _number(self.learning_rate) or self.learning_rate <= 0:
                raise ValueError(f"{_flag(name)} must be a positive number; received {self.learning_rate!r}")
        for name in ("weight_decay", "clip_norm", "final_learning_rate_ratio"):
            value = getattr(self, name)
            if not _number(value) or value < 0:
                raise ValueError(f"{_flag(name)} must be a number >= 0; received {value!r}")
        if self.final_learning_rate_ratio > 1:
            raise ValueError(f"--final-learning-rate-ratio must be at most 1; received "
                             f"{self.final_learning_rate_ratio!r}")
        if not _number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise ValueError(f"--validation-fraction must be in (0, 1); received {self.validation_fraction!r}")
        if self.epochs is not None and (not _number(self.epochs) or self.epochs <= 0):
            raise ValueError(f"--epochs must be a positive number; received {self.epochs!r}")
        if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int) or self.lora_rank < 0:
            raise ValueError(f"--lora-rank must be an integer >= 0; received {self.lora_rank!r}")
        if self.warmup_steps is not None and (not isinstance(self.warmup_steps, int) or self.warmup_steps < 0):
            raise ValueError(f"--warmup-steps must be an integer >= 0; received {self.warmup_steps!r}")
        if self.cpu_devices < 0 or (self.cpu_devices and self.strategy != "mirrored"):
            raise ValueError(f"--cpu-devices goes with --strategy mirrored only; received cpu_devices="
                             f"{self.cpu_devices}, strategy={self.strategy!r}")
        if self.epochs is None and self.steps % self.steps_per_execution:
            raise ValueError(f"--steps-per-execution must divide --steps; received "
                             f"steps_per_execution={self.steps_per_execution}, steps={self.steps}")
        if self.checkpoint_every % self.steps_per_execution:
            raise ValueError(f"--steps-per-execution must divide --checkpoint-every; received "
                             f"steps_per_execution={self.steps_per_execution}, "
                             f"checkpoint_every={self.checkpoint_every}")
        if self.labels and self.task not in ("classify", "classify-images"):
            raise ValueError("--labels is for the classify and classify-images tasks only")
        for name in qa_options:
            if getattr(self, name) is not None and self.task != "qa":
                raise ValueError(f"{_flag(name)} is for the qa task only")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"--labels must be distinct names; received {self.labels}")
        if self.task in ("classify", "text-to-text") and not self.data:
            raise ValueError(f"the {self.task} task needs --data (labelled lines)")
        required_family = TASK_FAMILIES.get(self.task)
        if required_family and self.family not in (None, required_family):
            raise ValueError(f"the {self.task} task trains the {required_family} family; "
                             f"received --family {self.family}")
        if self.family == "vit" and self.task != "classify-images":
            raise ValueError(f"the vit family trains with the classify-images task; received the {self.task} task")
        self._check_image_options()
        if self.preset is not None:
            self._check_preset()
        for name in ("model_options",):
            if not isinstance(self.model_options, dict):
                raise ValueError(f"--model-option must be KEY=VALUE pairs; received {self.model_options!r}")

    def _check_image_options(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.task != "classify-images":
            given = [name for name in IMAGE_OPTIONS if getattr(self, name) != defaults[name]]
            if given:
                raise ValueError(f"for the classify-images task only: {', '.join(map(_flag, given))}")
            return
        ignored = [name for name in TEXT_OPTIONS if getattr(self, name) != defaults[name]]
        if ignored:
            raise ValueError(f"for text tasks only (classify-images reads images): {', '.join(map(_flag, ignored))}")
        if len(self.data) > 1 or len(self.validation_data) > 1:
            raise ValueError(f"classify-images reads one image folder per --data / --validation-data; received "
                             f"--data {self.data}" + (f", --validation-data {self.validation_data}"
                                                      if self.validation_data else ""))
        if self.validation_data and not self.data:
            raise ValueError("--validation-data needs --data: the built-in images have their own validation split")
        if self.image_size is not None and (isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
                                            or self.image_size < 1):
            raise ValueError(f"--image-size must be a positive integer; received {self.image_size!r}")
        if self.image_size is not None and self.model_options.get("image_size", self.image_size) != self.image_size:
            raise ValueError(f"--image-size {self.image_size} and --model-option image_size="
                             f"{self.model_options['image_size']} disagree; give one")

    def _check_preset(self):
        from keras_transformer.models import get_preset, list_presets

        if self.init is not None:
            raise ValueError("--preset and --init exclude each other: --init brings its own model")
        family = self.resolved_family
        if self.preset not in list_presets(family):
            get_preset(self.preset, family)  # raises, listing the family's presets

    # -------------------------------------------------------------- derived

    @property
    def resolved_family(self):
        """The family when it is known without loading --init (task default, else gpt)."""
        return self.family or TASK_FAMILIES.get(self.task, "gpt")

    @property
    def resolved_tokenizer_kind(self):
        return self.tokenizer_kind or ("wordpiece" if self.task == "qa" else "bytes")

    def output_dir(self, family=None):
        if self.output:
            return self.output
        family = family or self.resolved_family
        return os.path.join("runs", family if self.task == "pretrain" else f"{family}-{self.task}")

    # -------------------------------------------------------------- JSON

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(names)}")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path):
        try:
            with open(path, encoding="utf-8") as handle:
                values = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read the configuration ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of options")
        return cls.from_dict(values)

    def differences(self, other):
        """Fields (other than RESUMABLE_CHANGES) whose values differ from `other`'s."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs.get(k))


def _flag(name):
    return "--" + name.replace("_", "-")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)

r"""The training application: `python -m training [pretrain|classify|text-to-text|classify-images|qa|tokenizer] [options]`.

With no arguments it pre-trains a small GPT (gpt2_tiny: 2 layers, 64 wide) on
byte-level ids of the built-in corpus for 600 steps (about a minute on two
CPU cores), then prints the validation loss against the corpus' unigram
entropy. `python -m training pretrain --help` lists every option with its
default (the fields of `training.config.TrainConfig`).

Launch commands (the same run on each kind of hardware; --batch-size is global):

    # one device (CPU or one GPU)
    python -m training pretrain --family gpt --preset gpt2_tiny --output runs/gpt

    # every GPU of this machine (MirroredStrategy); on a CPU-only machine add
    # --cpu-devices 2 to try it on two logical CPU devices
    python -m training pretrain --strategy mirrored --output runs/gpt

    # several machines (MultiWorkerMirroredStrategy): the same command on each, with
    # its own TF_CONFIG; OUTPUT must be a folder all workers share (only the chief,
    # worker 0, writes into it)
    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        python -m training pretrain --strategy multi_worker --output /shared/runs/gpt

    # a Cloud TPU VM (TPUStrategy; --tpu NAME for a TPU reached over the network). OUTPUT is a
    # local folder: checkpoints are made atomic with POSIX renames, which gs:// does not have
    python -m training pretrain --strategy tpu --precision mixed_bfloat16 --output runs/gpt

Rerunning a command resumes it from its newest checkpoint; `--overwrite`
starts over. Fine-tuning:

    python -m training pretrain --init runs/gpt --data my_text/ --output runs/gpt-more  # GPT, continued
    python -m training classify --init runs/bert --data train.txt --output runs/cls      # label<TAB>text
    python -m training text-to-text --init hf/t5-small --tokenizer tok/ --data pairs.txt  # source<TAB>target
    python -m training qa --init runs/bert --output runs/qa     # SQuAD v1.1 JSON; default: a built-in sample

Images (a ViT; no --data: built-in synthetic shapes, 7 classes, drawn at run time):

    python -m training classify-images --output runs/vit                                 # built-in images
    python -m training classify-images --data photos/ --image-size 64 --random-flip     # photos/CLASS/*.jpg

Modules: config (options), cli, run (one run end to end), data (text,
images, tokenizer, pipelines), modeling (presets, --init, heads), optimizer (AdamW,
clipping, loss scaling), schedules, checkpoints, callbacks, distribution
(strategies, sharding), compat (Keras multi-worker fix).
"""

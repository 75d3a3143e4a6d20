"""The special token ids of a tokenizer, read from its vocabulary."""

import dataclasses

# Token strings looked up, in order of preference (WordPiece/BERT, SentencePiece/T5).
CANDIDATES = {
    "pad_id": ("[PAD]", "<pad>"),
    "unk_id": ("[UNK]", "<unk>"),
    "start_id": ("[CLS]", "<s>"),
    "end_id": ("[SEP]", "</s>"),
    "mask_id": ("[MASK]", "<mask>"),
}
SENTINEL_FORMAT = "<extra_id_{}>"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """Special ids the pipelines need, derived from a tokenizer's vocabulary.

    Nothing is stored beside the tokenizer: the ids are looked up by token
    string, so a tokenizer rebuilt from its saved vocabulary gives the same
    ids. `pad_id` falls back to 0 (keras-hub's padding value; for bytes, the
    NUL byte); the others are None where the vocabulary lacks them.

    Attributes:
        vocabulary_size: size of the id space (model `vocabulary_size`).
        pad_id: padding, also T5's decoder start id.
        unk_id: `[UNK]` / `<unk>`.
        start_id: `[CLS]` / `<s>`: the first token of a BERT-style input.
        end_id: `[SEP]` / `</s>`: ends a segment; separates packed documents.
        mask_id: `[MASK]` / `<mask>`.
        sentinel_ids: ids of `<extra_id_0>`, `<extra_id_1>`, ... in that order.
    """

    vocabulary_size: int
    pad_id: int
    unk_id: int | None = None
    start_id: int | None = None
    end_id: int | None = None
    mask_id: int | None = None
    sentinel_ids: tuple = ()

    @classmethod
    def from_tokenizer(cls, tokenizer):
        vocabulary = tokenizer.get_vocabulary()
        if not isinstance(vocabulary, dict):
            vocabulary = {token: i for i, token in enumerate(vocabulary)}

        def lookup(candidates):
            return next((vocabulary[t] for t in candidates if t in vocabulary), None)

        ids = {name: lookup(candidates) for name, candidates in CANDIDATES.items()}
        if ids["pad_id"] is None:
            ids["pad_id"] = 0
        sentinels = []
        while SENTINEL_FORMAT.format(len(sentinels)) in vocabulary:
            sentinels.append(vocabulary[SENTINEL_FORMAT.format(len(sentinels))])
        return cls(int(tokenizer.vocabulary_size()), sentinel_ids=tuple(sentinels), **ids)

    @property
    def all_ids(self):
        """Every special id (padding included), sorted: never masked, never noise."""
        ids = {self.pad_id, self.unk_id, self.start_id, self.end_id, self.mask_id}
        return tuple(sorted(i for i in ids | set(self.sentinel_ids) if i is not None))

    def require(self, owner, *names):
        """Raises a ValueError naming `owner` unless every id in `names` exists."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"{owner} needs the tokenizer's {missing}, which its vocabulary lacks; "
                f"it has {self}. Train it with keras_transformer.text.train_tokenizer."
            )

    def to_json(self):
        config = dataclasses.asdict(self)
        config["sentinel_ids"] = list(self.sentinel_ids)
        return config

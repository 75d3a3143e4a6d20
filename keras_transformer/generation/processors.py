"""Logits processors with Hugging Face `GenerationConfig` semantics, in keras.ops.

Each control edits the (batch, vocab) float32 scores of the position being
filled, given the tokens so far; banned ids get -inf. The order is the one
transformers uses: repetition penalty, n-gram ban, bad words, minimum
lengths, forced BOS/EOS, suppressed tokens, then the vocabulary limit.
Greedy decoding and sampling apply them to the raw logits, beam search to
the log-softmax, as transformers does.

Settings that change shapes or loops (`no_repeat_ngram_size`,
`bad_words_ids`, `suppress_tokens`, forced ids) are Python values; the
others (`repetition_penalty`, `min_new_tokens`, `min_length`) may also be
(batch,) tensors, one value per row, as served signatures pass them.

Example: with `repetition_penalty=2.0`, a token already in the row whose
logit is 3.0 gets 1.5, one whose logit is -1.0 gets -2.0 (transformers'
rule: divide positive scores, multiply negative ones).
"""

import numpy as np
from keras import ops

NEG_INF = -float("inf")


def _is_tensor(value):
    return value is not None and not isinstance(value, (int, float, np.integer, np.floating))


class LogitsProcessor:
    """All the controls of one generation call.

    Args:
        vocabulary_size: the model's vocabulary size.
        stop_token_ids: tuple of ints (the end-of-sequence ids).
        repetition_penalty: float or (batch,) tensor; 1.0 = off.
        no_repeat_ngram_size: int; 0 = off.
        bad_words_ids: list of id lists never generated (the last id of a
            list is banned when the tokens before it end the row).
        suppress_tokens: ids never generated.
        min_new_tokens: int or (batch,) tensor: stop ids are banned before.
        min_length: int or (batch,) tensor: stop ids are banned while the
            row (prompt included; for seq2seq the start token) is shorter.
        forced_bos_token_id: the first new token (seq2seq only, as in
            transformers, where a decoder-only prompt is already past it).
        forced_eos_token_id: int or list: the last allowed new token.
        vocabulary_limit: ids >= this are never generated (None = off).
        seq2seq: whether the rows are decoder outputs (forced BOS applies).
    """

    def __init__(self, vocabulary_size, stop_token_ids=(), repetition_penalty=1.0, no_repeat_ngram_size=0,
                 bad_words_ids=None, suppress_tokens=None, min_new_tokens=0, min_length=0,
                 forced_bos_token_id=None, forced_eos_token_id=None, vocabulary_limit=None, seq2seq=False):
        self.vocabulary_size = int(vocabulary_size)
        self.stop_token_ids = tuple(int(i) for i in stop_token_ids or ())
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = int(no_repeat_ngram_size or 0)
        bad_words_ids = [list(map(int, words)) for words in bad_words_ids or ()]
        self.single_bad_words = sorted({words[0] for words in bad_words_ids if len(words) == 1})
        self.multi_bad_words = [words for words in bad_words_ids if len(words) > 1]
        self.suppress_tokens = sorted({int(i) for i in suppress_tokens or ()})
        self.min_new_tokens = min_new_tokens
        self.min_length = min_length
        self.forced_bos_token_id = forced_bos_token_id if seq2seq else None
        if isinstance(forced_eos_token_id, int):
            forced_eos_token_id = [forced_eos_token_id]
        self.forced_eos_token_id = list(forced_eos_token_id) if forced_eos_token_id is not None else None
        self.vocabulary_limit = vocabulary_limit
        banned = np.zeros(self.vocabulary_size, bool)
        banned[self.single_bad_words + self.suppress_tokens] = True
        if vocabulary_limit is not None:
            banned[int(vocabulary_limit):] = True
        self._static_ban = banned if banned.any() else None

    def __call__(self, scores, tokens, valid, index, new_index, max_new_tokens, row_lengths):
        """Processed scores.

        Args:
            scores: (batch, vocab) float32.
            tokens: (batch, length) int32 buffer; position `index` is being filled.
            valid: (batch, length) bool: positions holding real tokens so far.
            index: scalar int, the position being filled.
            new_index: scalar int, tokens generated before this one.
            max_new_tokens: (batch,) int32, each row's limit.
            row_lengths: (batch,) int32, real tokens of each row before this one.
        """
        penalty = self.repetition_penalty
        if _is_tensor(penalty) or penalty != 1.0:
            scores = self._repetition(scores, tokens, valid, penalty)
        if self.no_repeat_ngram_size > 0:
            scores = self._no_repeat_ngram(scores, tokens, valid, index)
        for words in self.multi_bad_words:
            scores = self._ban_after(scores, tokens, valid, index, words)
        if self.stop_token_ids:
            too_short = None
            if _is_tensor(self.min_new_tokens) or self.min_new_tokens > 0:
                too_short = new_index < ops.cast(self.min_new_tokens, "int32")
            if _is_tensor(self.min_length) or self.min_length > 0:
                short = row_lengths < ops.cast(self.min_length, "int32")
                too_short = short if too_short is None else too_short | short
            if too_short is not None:
                too_short = ops.broadcast_to(ops.reshape(too_short, (-1, 1)), (ops.shape(scores)[0], 1))
                stops = self._mask(self.stop_token_ids)[None, :]
                scores = ops.where(too_short & stops, NEG_INF, scores)
        if self.forced_bos_token_id is not None:
            scores = self._force(scores, new_index == 0, [self.forced_bos_token_id])
        if self.forced_eos_token_id is not None:
            last = ops.reshape(new_index + 1 >= max_new_tokens, (-1, 1))
            scores = self._force(scores, last, self.forced_eos_token_id)
        if self._static_ban is not None:
            scores = ops.where(ops.convert_to_tensor(self._static_ban)[None, :], NEG_INF, scores)
        return scores

    # ------------------------------------------------------------ pieces

    def _mask(self, ids):
        mask = np.zeros(self.vocabulary_size, bool)
        mask[list(ids)] = True
        return ops.convert_to_tensor(mask)

    def _presence(self, tokens, valid):
        """(batch, vocab) bool: ids that occur at valid positions of each row."""
        batch, length = ops.shape(tokens)[0], ops.shape(tokens)[1]
        rows = ops.repeat(ops.arange(batch, dtype="int32")[:, None], length, axis=1)
        indices = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(tokens, (-1,))], axis=1)
        counts = ops.scatter(indices, ops.reshape(ops.cast(valid, "float32"), (-1,)), (batch, self.vocabulary_size))
        return counts > 0

    def _repetition(self, scores, tokens, valid, penalty):
        penalty = ops.reshape(ops.cast(penalty, "float32"), (-1, 1))
        penalized = ops.where(scores < 0, scores * penalty, scores / penalty)
        return ops.where(self._presence(tokens, valid), penalized, scores)

    def _ban(self, scores, tokens, ban_rows):
        """Sets -inf at ids `tokens` (batch, n) where `ban_rows` (batch, n) is True."""
        return ops.where(self._presence(tokens, ban_rows), NEG_INF, scores)

    def _no_repeat_ngram(self, scores, tokens, valid, index):
        """Bans ids that would repeat an n-gram already in the row (transformers' rule)."""
        n = self.no_repeat_ngram_size
        length = ops.shape(tokens)[1]
        starts = ops.arange(length, dtype="int32")
        # Window j covers positions j .. j + n - 1; it may be banned when it lies
        # before `index` and its first n - 1 ids equal the last n - 1 ids of the row.
        candidate = (starts + n - 1 < index)[None, :] & ops.ones_like(valid)
        for k in range(n):
            shifted = ops.take(valid, ops.minimum(starts + k, length - 1), axis=1)
            candidate = candidate & shifted
        for k in range(n - 1):
            window = ops.take(tokens, ops.minimum(starts + k, length - 1), axis=1)
            recent = ops.take(tokens, ops.maximum(index - (n - 1) + k, 0), axis=1)  # (batch,)
            candidate = candidate & (window == recent[:, None])
        candidate = candidate & (index >= n - 1)
        following = ops.take(tokens, ops.minimum(starts + n - 1, length - 1), axis=1)
        return self._ban(scores, following, candidate)

    def _ban_after(self, scores, tokens, valid, index, words):
        """Bans words[-1] where the row ends with words[:-1]."""
        prefix = len(words) - 1
        match = index >= prefix
        match = ops.broadcast_to(match, (ops.shape(tokens)[0],))
        for k, word in enumerate(words[:-1]):
            position = ops.maximum(index - prefix + k, 0)
            # Not `&=`: on PyTorch that writes into the broadcast view.
            match = match & (ops.take(tokens, position, axis=1) == word) & ops.take(valid, position, axis=1)
        banned = ops.where(match[:, None], NEG_INF, scores)
        column = ops.arange(self.vocabulary_size) == words[-1]
        return ops.where(column[None, :], banned, scores)

    def _force(self, scores, rows, ids):
        """Rows where `rows` is True keep only `ids` (score 0), as transformers forces tokens."""
        allowed = self._mask(ids)[None, :]
        forced = ops.where(allowed, 0.0, NEG_INF)
        return ops.where(ops.reshape(rows, (-1, 1)) if _is_tensor(rows) else rows, forced, scores)


def processor_for(settings, vocabulary_size, stop_token_ids, seq2seq, vocabulary_limit=None):
    """The processor of resolved settings (`keras_transformer.generation.config.resolve`)."""
    return LogitsProcessor(
        vocabulary_size, stop_token_ids, settings["repetition_penalty"], settings["no_repeat_ngram_size"],
        settings["bad_words_ids"], settings["suppress_tokens"], settings["min_new_tokens"], settings["min_length"],
        settings["forced_bos_token_id"], settings["forced_eos_token_id"], vocabulary_limit=vocabulary_limit,
        seq2seq=seq2seq)

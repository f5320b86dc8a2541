"""A batched decode loop for causal language models, used in place of `generate`.

`transformers`' `generate` (5.23) spends a large share of each step on work
that this study does not need: logits processors over the whole vocabulary,
stopping criteria, and a key/value cache that concatenates every layer's
tensors at every step. This loop calls the model's forward directly:

- the prompt is run once with `logits_to_keep=1`, then one token per step;
- for models whose layers all use full attention, the prompts run in groups
  of `PREFILL_GROUP` rows of similar length, so a short prompt is not padded
  to the batch's longest one in that forward pass, and the tokens that every
  prompt starts with (a chat template's system prompt) run once for the
  whole batch, and so does each prompt that several rows share (the passes
  of one prompt);
- full-attention layers write into a key/value buffer sized for the prompt
  plus `max_new_tokens`, so a step copies one token per layer instead of the
  whole cache, and the batches of a job reuse those buffers (`BufferPool`);
- the caller's `choose` picks each row's next token from its logits (an
  argmax for greedy decoding, so greedy rows never compute a softmax);
- rows that stopped are dropped from the batch once they are a quarter of it,
  so a batch does not keep computing rows whose text is finished.

Left padding with an attention mask and position ids counted from each row's
first real token make a padded row compute what it would compute alone.
"""

import math
from collections.abc import Callable

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

# Finished rows are dropped from the batch once they are this share of it. Dropping copies
# every layer's cache, so doing it for each finished row would cost more than it saves.
DROP_SHARE = 0.25

# Rows per forward pass of the prompts. Smaller groups waste less on padding,
# and 8 rows still keep the matrix products large on a CPU.
PREFILL_GROUP = 8

# A prefix shared by every prompt is computed once when it has at least this many tokens.
# SmolLM2's chat template starts each prompt with 25 such tokens, a quarter of an average benchmark prompt.
MIN_SHARED_PREFIX = 8

# Chooses the next token of each active row from its logits (active rows x vocabulary).
# The second argument is the list of the active rows' indices in the original batch.
TokenChooser = Callable[[torch.Tensor, list[int]], torch.Tensor]

# Returns True when a row's generated tokens end in a stop string.
TextStop = Callable[[list[int]], bool]


class BufferPool:
    """Memory for the key/value buffers, reused by the batches of one job.

    A batch's buffers are large (about 1.3 GB for 96 rows of 240-token prompts
    with SmolLM2), and fresh memory is slow to write the first time, because
    the operating system maps it page by page. On the 2-core test machine
    such first writes ran at 0.14 to 0.35 GB/s. Each layer's storage is kept
    and grows only when a batch needs more than an earlier one.
    """

    def __init__(self):
        self._storage: dict[tuple[int, str], torch.Tensor] = {}

    def take(self, key: tuple[int, str], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Return a tensor of `shape`, with `like`'s dtype and device, backed by the storage kept under `key`."""
        count = math.prod(shape)
        storage = self._storage.get(key)
        if storage is None or storage.numel() < count or storage.dtype != like.dtype or storage.device != like.device:
            # Dropped before the new one is allocated, so the two never hold memory at once.
            self._storage.pop(key, None)
            storage = self._storage[key] = like.new_empty(count)
        return storage[:count].view(shape)

    def clear(self) -> None:
        """Release every kept storage, for example before a retry with a smaller batch."""
        self._storage.clear()


class PreallocatedLayer(DynamicLayer):
    """A full-attention cache layer backed by a buffer of `capacity` positions.

    `DynamicLayer` concatenates the whole cache with each new token. This
    layer writes the new positions into its buffer, and its `keys` and
    `values` are views of the filled part. With a `pool`, the buffer's memory
    comes from it, under this layer's `index`.
    """

    def __init__(self, capacity: int, pool: BufferPool | None = None, index: int = 0):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.pool = pool
        self.index = index

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        batch, heads = key_states.shape[:2]
        self.dtype, self.device = key_states.dtype, key_states.device
        self.key_buffer = self._buffer("keys", (batch, heads, self.capacity, key_states.shape[-1]), key_states)
        self.value_buffer = self._buffer("values", (batch, heads, self.capacity, value_states.shape[-1]),
                                         value_states)
        self.is_initialized = True

    def _buffer(self, kind: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        if self.pool is None:
            return like.new_empty(shape)
        return self.pool.take((self.index, kind), shape, like)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)

        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"key/value cache overflow: {end} positions in a buffer of {self.capacity}")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def fill_rows(self, rows: torch.Tensor | slice, keys: torch.Tensor, values: torch.Tensor, batch: int,
                  end: int) -> None:
        """Write the keys and values of `rows` so that they end at position `end`."""
        if not self.is_initialized:
            template = keys.new_zeros((batch, *keys.shape[1:3], keys.shape[-1]))
            self.lazy_initialization(template, template)
            # The padding positions are masked in every step, but they must hold
            # finite numbers because a masked score still multiplies them. The first
            # call's `end` is the prompt's end, and the steps write every later position.
            self.key_buffer[:, :, :end].zero_()
            self.value_buffer[:, :, :end].zero_()
        width = keys.shape[-2]
        self.key_buffer[rows, :, end - width : end] = keys
        self.value_buffer[rows, :, end - width : end] = values
        self.length = max(self.length, end)
        self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer = self.key_buffer[indices]
            self.value_buffer = self.value_buffer[indices]
            self._expose()

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]


def preallocated_cache(config, capacity: int, pool: BufferPool | None = None) -> DynamicCache:
    """Return a `DynamicCache` whose full-attention layers are `PreallocatedLayer`s, with memory from `pool`.

    Sliding-window layers (Gemma 3 has them) keep their own class, which
    already bounds their size.
    """
    cache = DynamicCache(config=config)
    cache.layers = [
        PreallocatedLayer(capacity, pool, index) if type(layer) is DynamicLayer else layer
        for index, layer in enumerate(cache.layers)
    ]
    return cache


def shared_prefix_length(input_ids: torch.Tensor, lengths: torch.Tensor) -> int:
    """Return how many first tokens every row of a left-padded batch shares, leaving each row at least one."""
    prompt_length = input_ids.shape[1]
    shortest = int(lengths.min())
    # Row r's prompt starts at column prompt_length - lengths[r], so each row's first tokens are gathered from there.
    columns = (prompt_length - lengths)[:, None] + torch.arange(max(shortest - 1, 0))
    starts = input_ids.gather(1, columns)
    differs = (starts != starts[:1]).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else starts.shape[1]


def _prefill_in_groups(model, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                       cache: DynamicCache) -> torch.Tensor:
    """Run the prompts' forward pass in groups of rows of similar length, and fill `cache` from them.

    A batch is padded to its longest prompt, so one forward pass over a batch
    of mixed lengths computes every padding position. Each group here is cut
    to its own longest prompt. When every prompt starts with the same
    `prefix` tokens, those run once and each group continues from them. The
    cache keeps the batch's left-padded layout: each row's prefix is copied
    in front of the rest of its prompt.
    """
    batch, prompt_length = input_ids.shape
    lengths = mask.sum(dim=-1)
    prefix = shared_prefix_length(input_ids, lengths)
    if prefix < MIN_SHARED_PREFIX:
        prefix = 0
    rest = lengths - prefix
    prefix_pairs = _run_prefix(model, input_ids, lengths, prefix)

    distinct, copies = distinct_rows(input_ids, mask)
    order = distinct[torch.argsort(rest[distinct], stable=True)]
    logits = None
    for start in range(0, len(order), PREFILL_GROUP):
        rows = order[start : start + PREFILL_GROUP]
        width = max(1, int(rest[rows].max()))
        group_cache = DynamicCache(config=model.config)
        for index, (keys, values) in enumerate(prefix_pairs):
            group_cache.update(keys.expand(len(rows), -1, -1, -1), values.expand(len(rows), -1, -1, -1), index)
        # The group's rest is left-padded to its own width, so its padding sits between prefix and rest.
        rest_mask = (torch.arange(width)[None, :] >= (width - rest[rows])[:, None]).to(mask.dtype)
        group_mask = torch.cat([mask.new_ones((len(rows), prefix)), rest_mask], dim=-1)
        group_logits = model(
            input_ids=input_ids[rows, -width:], attention_mask=group_mask, position_ids=positions[rows, -width:],
            past_key_values=group_cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1]
        if logits is None:
            logits = group_logits.new_empty((batch, group_logits.shape[-1]))
        targets = [copies[int(row)] for row in rows]
        source = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([len(t) for t in targets]))
        batch_rows = torch.cat(targets)
        logits[batch_rows] = group_logits[source]
        for layer, group_layer in zip(cache.layers, group_cache.layers):
            layer.fill_rows(batch_rows, group_layer.keys[source, :, prefix:], group_layer.values[source, :, prefix:],
                            batch, prompt_length)
        # Written after the rest, because the group's padding covered where each row's prefix goes.
        for layer, (keys, values) in zip(cache.layers, prefix_pairs):
            for row in batch_rows.tolist():
                layer.fill_rows(row, keys[0], values[0], batch, prompt_length - int(rest[row]))
    return logits


def distinct_rows(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Return the first row of each distinct prompt in a batch, and for each such row the rows with its prompt.

    The passes of one prompt are identical rows until their sampled tokens
    differ, so their prompt runs once and its keys and values are copied.
    """
    _, inverse = torch.unique(torch.cat([input_ids, mask], dim=1), dim=0, return_inverse=True)
    copies: dict[int, torch.Tensor] = {}
    for prompt in range(int(inverse.max()) + 1):
        rows = (inverse == prompt).nonzero().flatten()
        copies[int(rows[0])] = rows
    distinct = torch.tensor(sorted(copies))
    return distinct, copies


def _run_prefix(model, input_ids: torch.Tensor, lengths: torch.Tensor, prefix: int) -> list:
    """Run the first row's `prefix` tokens alone and return each layer's keys and values (one row)."""
    if prefix == 0:
        return []
    first = input_ids[:1, input_ids.shape[1] - int(lengths[0]) :][:, :prefix]
    prefix_cache = DynamicCache(config=model.config)
    model(input_ids=first, position_ids=torch.arange(prefix)[None], past_key_values=prefix_cache, use_cache=True,
          logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in prefix_cache.layers]


def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
           choose: TokenChooser, stop_ids: list[int], text_stop: TextStop | None = None,
           pool: BufferPool | None = None) -> list[list[int]]:
    """Generate up to `max_new_tokens` tokens for each row of a left-padded batch.

    Returns each row's new tokens. A row ends after its first token in
    `stop_ids` (which is kept as the last token), when `text_stop` returns
    True for its tokens, or at `max_new_tokens`. The key/value buffers take
    their memory from `pool` when one is given.
    """
    batch, prompt_length = input_ids.shape
    cache = preallocated_cache(model.config, prompt_length + max_new_tokens, pool)
    mask = attention_mask.to(torch.long)
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    if all(isinstance(layer, PreallocatedLayer) for layer in cache.layers) and batch > PREFILL_GROUP:
        logits = _prefill_in_groups(model, input_ids, mask, positions, cache)
    else:
        logits = model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1]
    positions = positions[:, -1:] + 1

    outputs: list[list[int]] = [[] for _ in range(batch)]
    active = list(range(batch))
    finished: set[int] = set()
    stop_set = set(stop_ids)
    for step in range(max_new_tokens):
        tokens = choose(logits, active)
        for row, token in zip(active, tokens.tolist()):
            if row in finished:
                continue
            outputs[row].append(token)
            if token in stop_set or (text_stop is not None and text_stop(outputs[row])):
                finished.add(row)

        if step == max_new_tokens - 1 or len(finished) == batch:
            break

        if sum(row in finished for row in active) >= max(1, DROP_SHARE * len(active)):
            keep = [index for index, row in enumerate(active) if row not in finished]
            selected = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(selected)
            mask, positions, tokens = mask[selected], positions[selected], tokens[selected]
            active = [active[index] for index in keep]

        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
        logits = model(
            input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
            past_key_values=cache, use_cache=True,
        ).logits[:, -1]
        positions = positions + 1

    return outputs

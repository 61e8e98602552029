"""Decoding label sequences: masked greedy/sampled decoding and batched beam search.

A decoder is driven by a *step function* ``step(prev_tokens, state) ->
(logits, state)``: ``prev_tokens`` is an ``N``-vector of label tokens (see
:mod:`.batching`: PAD, BOS, EOS, then one token per label), ``logits`` is
``N x V`` and ``state`` is any nest of tensors whose first dimension is ``N``
(tuples, lists, dicts; ``None`` allowed). Decoders with other layouts pass their
own ``reorder(state, index)``.

At every step, tokens already emitted by a sequence are masked to ``-inf``
before the softmax, together with the banned tokens (PAD and BOS by default), so
no output ever repeats a label and the scores are log-probabilities of the
masked policy. A sequence ends at EOS; after it, it emits PAD at no cost.

Beam search keeps ``B x K`` hypotheses in tensors; after each top-k over
``K x V`` candidates, the token history, the emitted-label mask, the finished
flags and the decoder state are all reordered with the beam back-pointers (the
reference SGM code forgot the masks). There is no loop over examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from mlbench.methods.neural.batching import LABEL_BOS, LABEL_EOS, LABEL_PAD

State = Any
StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
ReorderFn = Callable[[State, torch.Tensor], State]

DEFAULT_BANNED: tuple[int, ...] = (LABEL_PAD, LABEL_BOS)


def reorder_state(state: State, index: torch.Tensor) -> State:
    """Select rows ``index`` along dimension 0 of every tensor in a nest."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, tuple):
        return tuple(reorder_state(s, index) for s in state)
    if isinstance(state, list):
        return [reorder_state(s, index) for s in state]
    if isinstance(state, dict):
        return {k: reorder_state(v, index) for k, v in state.items()}
    raise TypeError(f"cannot reorder decoder state of type {type(state).__name__}")


def repeat_beams(x: torch.Tensor, beam_size: int) -> torch.Tensor:
    """Repeat each row ``beam_size`` times (row ``b`` becomes rows ``b*K .. b*K+K-1``)."""
    return x.repeat_interleave(beam_size, dim=0)


def _banned_mask(vocab_size: int, banned: Sequence[int], device: torch.device) -> torch.Tensor:
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    mask[list(banned)] = True
    if mask[LABEL_EOS]:
        raise ValueError("EOS cannot be banned: decoding could never end")
    return mask


def _pad_only(vocab_size: int, device: torch.device) -> torch.Tensor:
    """Log-probabilities (and logits) of a sequence that has ended: PAD, surely."""
    row = torch.full((vocab_size,), float("-inf"), device=device)
    row[LABEL_PAD] = 0.0
    return row


@dataclass
class DecodeResult:
    """Greedy or sampled sequences.

    ``tokens`` is ``B x S`` (PAD after EOS); ``log_probs`` the log-probability of
    each chosen token under the masked policy (0 after EOS; differentiable);
    ``finished`` whether the sequence ended with EOS within ``max_steps``.
    """

    tokens: torch.Tensor
    log_probs: torch.Tensor
    finished: torch.Tensor


def decode(
    step: StepFn,
    state: State,
    batch_size: int,
    vocab_size: int,
    max_steps: int,
    *,
    device: torch.device | str = "cpu",
    sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    banned: Sequence[int] = DEFAULT_BANNED,
) -> DecodeResult:
    """Masked greedy (``sample=False``) or sampled decoding of ``batch_size`` sequences."""
    device = torch.device(device)
    emitted = _banned_mask(vocab_size, banned, device).expand(batch_size, vocab_size).clone()
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    prev = torch.full((batch_size,), LABEL_BOS, dtype=torch.long, device=device)
    pad_only = _pad_only(vocab_size, device)
    tokens: list[torch.Tensor] = []
    log_probs: list[torch.Tensor] = []
    for _ in range(max_steps):
        logits, state = step(prev, state)
        masked = (logits.float() / temperature).masked_fill(emitted, float("-inf"))
        # an ended sequence emits PAD with probability 1 (and its row is never all -inf)
        logp = F.log_softmax(torch.where(finished[:, None], pad_only, masked), dim=-1)
        if sample:
            tok = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(1)
        else:
            tok = logp.argmax(dim=-1)
        tokens.append(tok)
        log_probs.append(logp.gather(1, tok[:, None]).squeeze(1))
        emitted = emitted.scatter(1, tok[:, None], True)
        finished = finished | (tok == LABEL_EOS)
        prev = tok
        if bool(finished.all()):
            break
    if not tokens:
        empty = torch.zeros(batch_size, 0, device=device)
        return DecodeResult(empty.long(), empty, finished)
    return DecodeResult(torch.stack(tokens, 1), torch.stack(log_probs, 1), finished)


@dataclass
class BeamResult:
    """Beam search output: the best sequence per example and all ``K`` beams, best first."""

    tokens: torch.Tensor  # B x S, PAD after EOS
    scores: torch.Tensor  # B, log-probability of the best sequence
    beams: torch.Tensor  # B x K x S
    beam_scores: torch.Tensor  # B x K, descending (-inf for beams that never became valid)
    beam_finished: torch.Tensor  # B x K, whether each beam ended (EOS, or never valid)


def beam_search(
    step: StepFn,
    state: State,
    batch_size: int,
    vocab_size: int,
    beam_size: int,
    max_steps: int,
    *,
    device: torch.device | str = "cpu",
    banned: Sequence[int] = DEFAULT_BANNED,
    reorder: ReorderFn = reorder_state,
) -> BeamResult:
    """Batched beam search for the most probable masked label sequences.

    ``state`` holds one row per example; it is repeated to ``B*K`` rows here
    (row ``b*K + k`` is beam ``k`` of example ``b``), so ``step`` sees ``B*K`` rows.
    Hypotheses are ranked by total log-probability (no length normalisation).
    The search stops once every example's best hypothesis has ended: scores
    only decrease, so no unfinished hypothesis can overtake it (the other beams
    are then returned as they stand, possibly unfinished).
    """
    device = torch.device(device)
    B, K, V = batch_size, beam_size, vocab_size
    neg_inf = float("-inf")
    rows = torch.arange(B, device=device)
    state = reorder(state, rows.repeat_interleave(K))
    # only beam 0 is alive at the start, so the first step does not pick K copies of one token
    scores = torch.full((B, K), neg_inf, device=device)
    scores[:, 0] = 0.0
    emitted = _banned_mask(V, banned, device).expand(B, K, V).clone()
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)
    prev = torch.full((B * K,), LABEL_BOS, dtype=torch.long, device=device)
    # a finished (or dead) hypothesis continues with PAD at log-probability 0
    pad_only = _pad_only(V, device)
    for t in range(max_steps):
        logits, state = step(prev, state)
        logp = F.log_softmax(logits.float().view(B, K, V).masked_fill(emitted, neg_inf), dim=-1)
        logp = torch.where(finished[..., None], pad_only, logp)
        top, flat = (scores[..., None] + logp).view(B, K * V).topk(K, dim=1)
        beam = torch.div(flat, V, rounding_mode="floor")
        dead = torch.isinf(top)  # fewer than K valid candidates (tiny label sets)
        tok = (flat % V).masked_fill(dead, LABEL_PAD)
        # reorder everything that belongs to a hypothesis with the back-pointers
        history = torch.cat([history.gather(1, beam[..., None].expand(B, K, t)), tok[..., None]], dim=2)
        emitted = emitted.gather(1, beam[..., None].expand(B, K, V)).scatter(2, tok[..., None], True)
        finished = finished.gather(1, beam) | (tok == LABEL_EOS) | dead
        state = reorder(state, (rows[:, None] * K + beam).reshape(-1))
        scores = top
        prev = tok.reshape(-1)
        if bool(finished[:, 0].all()):  # beams are sorted: beam 0 is each example's best
            break
    return BeamResult(
        tokens=history[:, 0], scores=scores[:, 0], beams=history, beam_scores=scores, beam_finished=finished
    )


def teacher_forcing_mask(label_inputs: torch.Tensor, vocab_size: int, banned: Sequence[int] = DEFAULT_BANNED) -> torch.Tensor:
    """``B x S x V`` mask of the tokens the decoder may not emit at each teacher-forced step.

    Step ``t`` has read ``label_inputs[:, :t+1]`` (BOS, then the gold labels so
    far): those labels are masked, as the decoders above mask what they emitted,
    so training and decoding use the same masked policy.
    """
    seen = F.one_hot(label_inputs, vocab_size).cumsum(dim=1) > 0
    return seen | _banned_mask(vocab_size, banned, label_inputs.device)


def masked_sequence_nll(
    logits: torch.Tensor,
    label_inputs: torch.Tensor,
    label_outputs: torch.Tensor,
    banned: Sequence[int] = DEFAULT_BANNED,
) -> torch.Tensor:
    """Mean negative log-likelihood of the gold next tokens under the masked policy (PAD targets ignored).

    Gold targets are never masked: each label occurs once per sequence and EOS is never banned.
    """
    vocab = logits.shape[-1]
    masked = logits.float().masked_fill(teacher_forcing_mask(label_inputs, vocab, banned), float("-inf"))
    return F.cross_entropy(masked.reshape(-1, vocab), label_outputs.reshape(-1), ignore_index=LABEL_PAD)


def until_first_eos(tokens: torch.Tensor) -> torch.Tensor:
    """``B x S`` bool: the steps of each sequence up to and including its first EOS (all steps if none)."""
    is_eos = tokens == LABEL_EOS
    return (is_eos.long().cumsum(dim=1) - is_eos.long()) == 0


def sequence_log_probs(tokens: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """``B`` sums of per-step log-probabilities over the steps up to and including the first EOS.

    Later steps are selected away (``torch.where``, not a multiplication), so
    they receive exactly zero gradient even if they hold ``-inf``.
    """
    keep = until_first_eos(tokens)
    return torch.where(keep, log_probs, torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)).sum(dim=1)

"""Seq2Seq (SGM) and Seq2Set: the network, its decoding, the self-critical loss and the methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

import mlbench.methods.neural.decoders as decoders
from mlbench.api import FitContext, MlbenchError, Split
from mlbench.methods.neural.batching import LABEL_BOS, LABEL_EOS, LABEL_PAD, N_LABEL_SPECIALS
from mlbench.methods.neural.decoders import beam_search, decode, reorder_state, sequence_log_probs
from mlbench.methods.neural.sgm import Memory, SGMNetwork, dropout_off
from mlbench.methods.seq2seq import Seq2Seq
from mlbench.methods.seq2set import Seq2Set, reward_of
from mlbench.metrics import per_document_f1

N_LABELS = 6
V = N_LABELS + N_LABEL_SPECIALS


def network(global_embedding: bool = True, seed: int = 0, dropout: float = 0.0, **sizes) -> SGMNetwork:
    torch.manual_seed(seed)
    args = dict(
        vocab_size=30, n_labels=N_LABELS, embedding_dim=8, encoder_hidden=6, encoder_layers=1, decoder_hidden=12,
        decoder_layers=1, label_embedding_dim=5, attention_dim=7, dropout=dropout, embedding_dropout=0.0,
        global_embedding=global_embedding,
    )
    args.update(sizes)
    net = SGMNetwork(**args)
    with torch.no_grad():  # sharper, more varied distributions than the initialisation gives
        net.output.weight.mul_(8.0)
        net.output.bias.normal_(0.0, 2.0)
    return net.eval()


def documents(batch: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (batch,), generator=g)
    lengths[0] = 9
    tokens = torch.randint(2, 30, (batch, 9), generator=g)
    tokens[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def labels_of(row: list[int]) -> list[int]:
    end = row.index(LABEL_EOS) if LABEL_EOS in row else len(row)
    return row[:end]


def teacher_forced_log_prob(net: SGMNetwork, tokens, lengths, seqs: list[list[int]]) -> torch.Tensor:
    """Log-probability of each finished sequence (labels then EOS) by one teacher-forced pass."""
    width = max(len(s) for s in seqs)
    inputs = torch.full((len(seqs), width), LABEL_PAD)
    outputs = torch.full((len(seqs), width), LABEL_PAD)
    for i, s in enumerate(seqs):
        inputs[i, : len(s)] = torch.tensor([LABEL_BOS] + s[:-1])
        outputs[i, : len(s)] = torch.tensor(s)
    logp = torch.log_softmax(net(tokens, lengths, inputs), dim=-1)
    picked = logp.gather(2, outputs[..., None])[..., 0]
    return torch.where(outputs != LABEL_PAD, picked, torch.zeros(())).sum(1)


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("global_embedding", [True, False])
def test_no_decoded_output_ever_repeats_a_label(global_embedding) -> None:
    net = network(global_embedding)
    with torch.no_grad():  # one label dominates every step: only the mask stops it repeating
        net.output.bias[N_LABEL_SPECIALS + 2] = 40.0
        net.output.bias[LABEL_EOS] = -40.0
    tokens, lengths = documents(8)
    memory, state = net.encode(tokens, lengths)
    step = net.decoder(memory)
    outputs = {
        "greedy": decode(step, state, 8, V, max_steps=V).tokens,
        "sampled": decode(step, state, 8, V, max_steps=V, sample=True, generator=torch.Generator().manual_seed(0)).tokens,
        "beam": beam_search(step, state, 8, V, beam_size=4, max_steps=V).beams.flatten(0, 1),
    }
    for name, rows in outputs.items():
        for row in rows.tolist():
            labels = labels_of(row)
            assert all(t >= N_LABEL_SPECIALS for t in labels), (name, row)
            assert len(labels) == len(set(labels)), (name, row)
        # every label was used before EOS (EOS was made very unlikely), yet no row went all -inf
        assert any(len(labels_of(r)) == N_LABELS for r in rows.tolist()), name


@pytest.mark.parametrize("global_embedding", [True, False])
def test_beam_width_one_equals_greedy(global_embedding) -> None:
    net = network(global_embedding, seed=3)
    tokens, lengths = documents(6, seed=4)
    with torch.no_grad():
        memory, state = net.encode(tokens, lengths)
        greedy = decode(net.decoder(memory), state, 6, V, max_steps=V)
        beam = beam_search(net.decoder(memory), state, 6, V, beam_size=1, max_steps=V)
    width = greedy.tokens.shape[1]
    assert torch.equal(beam.tokens[:, :width], greedy.tokens)
    assert torch.allclose(beam.scores, greedy.log_probs.sum(1), atol=1e-5)


def test_beam_search_reorders_masks_and_attention_states_with_the_back_pointers() -> None:
    # The score of every beam returned must be the log-probability a teacher-forced pass gives
    # its token sequence: that holds only if the LSTM state, the attention context, the mask
    # of labels read and the global embedding's previous distribution all followed their
    # hypothesis through every back-pointer reordering.
    net = network(True, seed=5)
    tokens, lengths = documents(4, seed=6)
    with torch.no_grad():
        memory, state = net.encode(tokens, lengths)
        res = beam_search(net.decoder(memory), state, 4, V, beam_size=5, max_steps=V)
        broken = beam_search(net.decoder(memory), state, 4, V, beam_size=5, max_steps=V, reorder=lambda s, i: (
            reorder_state(s, i) if s[0].shape[0] != len(i) else s))  # repeats for the beams, then never reorders
        moved = 0
        for result, must_match in ((res, True), (broken, False)):
            seqs, docs, scores = [], [], []
            for b in range(4):
                for k in range(5):
                    row = result.beams[b, k].tolist()
                    if LABEL_EOS in row and math.isfinite(float(result.beam_scores[b, k])):
                        seqs.append(labels_of(row) + [LABEL_EOS])
                        docs.append(b)
                        scores.append(float(result.beam_scores[b, k]))
            rescored = teacher_forced_log_prob(net, tokens[docs], lengths[docs], seqs)
            close = np.isclose(rescored.numpy(), np.array(scores), atol=1e-4)
            if must_match:
                assert close.all()
                # the case is not trivial: back-pointers did move hypotheses between rows
                moved = sum(
                    1 for b in range(4) for k in range(5) if res.beams[b, k, 0] != res.beams[b, 0, 0]
                )
            else:
                assert not close.all()
    assert moved > 0


def test_beam_search_of_a_batch_equals_one_document_at_a_time() -> None:
    net = network(True, seed=7)
    tokens, lengths = documents(5, seed=8)
    with torch.no_grad():
        memory, state = net.encode(tokens, lengths)
        batch = beam_search(net.decoder(memory), state, 5, V, beam_size=3, max_steps=V)
        for b in range(5):
            t = tokens[b : b + 1, : int(lengths[b])]
            m, s = net.encode(t, lengths[b : b + 1])
            alone = beam_search(net.decoder(m), s, 1, V, beam_size=3, max_steps=V)
            width = alone.tokens.shape[1]
            assert batch.tokens[b, :width].tolist() == alone.tokens[0].tolist()
            assert float(batch.scores[b]) == pytest.approx(float(alone.scores[0]), abs=1e-4)


# ------------------------------------------------------------------ network


def test_attention_ignores_padding() -> None:
    net = network(seed=9)
    g = torch.Generator().manual_seed(10)
    states = torch.randn(3, 7, 12, generator=g)
    lengths = torch.tensor([7, 3, 1])
    mask = torch.arange(7)[None, :] < lengths[:, None]
    memory = Memory(states, net.attention_key(states), mask)
    noisy_states = torch.where(mask[..., None], states, torch.randn(3, 7, 12, generator=g) * 100)
    noisy = Memory(noisy_states, net.attention_key(noisy_states), mask)
    query = torch.randn(6, 12, generator=g)  # two rows (e.g. beams) per example
    assert torch.allclose(net.attend(query, memory), net.attend(query, noisy), atol=1e-6)
    # and the context is a convex combination of the example's own valid states
    ctx = net.attend(query, memory)
    assert torch.allclose(ctx[4], states[2, 0], atol=1e-6) and torch.allclose(ctx[5], states[2, 0], atol=1e-6)


def test_a_document_scores_the_same_whatever_padding_its_batch_carries() -> None:
    # the backward LSTM starts at each document's own last token, and attention skips padding
    net = network(seed=11)
    tokens, lengths = documents(4, seed=12)
    labels = torch.tensor([[LABEL_BOS, 4, 7]] * 4)
    with torch.no_grad():
        together = net(tokens, lengths, labels)
        for b in range(4):
            alone = net(tokens[b : b + 1, : int(lengths[b])], lengths[b : b + 1], labels[b : b + 1])
            assert torch.allclose(together[b], alone[0], atol=1e-5, equal_nan=False)


def test_dropout_off_keeps_training_mode_but_is_deterministic() -> None:
    net = network(seed=13, dropout=0.5, encoder_layers=2, decoder_layers=2, decoder_hidden=9)
    net.train()
    tokens, lengths = documents(3)
    labels = torch.tensor([[LABEL_BOS, 4]] * 3)
    with dropout_off(net):
        assert net.training
        a, b = net(tokens, lengths, labels), net(tokens, lengths, labels)
    assert torch.equal(a, b)
    assert not torch.equal(net(tokens, lengths, labels), net(tokens, lengths, labels))  # dropout is back


# ------------------------------------------------------------------ rewards and the policy gradient


def test_f1_reward_equals_sklearn_per_document_f1_including_empty_sets() -> None:
    rng = np.random.default_rng(0)
    gold = rng.random((300, 9)) < 0.25
    pred = rng.random((300, 9)) < 0.3
    gold[:20] = False  # empty gold sets; among them some empty predictions (0/0 -> 0)
    pred[10:30] = False
    pred[:5] = gold[:5] = False
    r = reward_of(torch.from_numpy(pred), torch.from_numpy(gold), "f1").numpy()
    sk = np.array([f1_score(g, p, zero_division=0) for g, p in zip(gold.astype(int), pred.astype(int))])
    np.testing.assert_allclose(r, sk, atol=1e-6)
    np.testing.assert_allclose(r, per_document_f1(gold.astype(int), pred.astype(int)), atol=1e-6)
    assert (r[:5] == 0).all()  # both empty: 0, as per_document_f1 and zero_division=0
    hamming = reward_of(torch.from_numpy(pred), torch.from_numpy(gold), "hamming").numpy()
    np.testing.assert_allclose(hamming, (pred == gold).mean(1), atol=1e-6)
    mix = reward_of(torch.from_numpy(pred), torch.from_numpy(gold), "mix", 0.3).numpy()
    np.testing.assert_allclose(mix, 0.3 * sk + 0.7 * (pred == gold).mean(1), atol=1e-6)


def test_sequence_log_probs_stop_at_the_first_eos() -> None:
    t = N_LABEL_SPECIALS
    tokens = torch.tensor([[t, LABEL_EOS, LABEL_PAD, LABEL_PAD], [t + 1, t, t + 2, LABEL_EOS], [LABEL_EOS, t, LABEL_EOS, t]])
    log_probs = torch.tensor([[-1.0, -2.0, -math.inf, 5.0], [-1.0, -1.0, -1.0, -1.0], [-0.5, -9.0, -9.0, -math.inf]],
                             requires_grad=True)
    total = sequence_log_probs(tokens, log_probs)
    assert total.tolist() == [-3.0, -4.0, -0.5]
    total.sum().backward()
    assert log_probs.grad.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def small_method(cls=Seq2Set, **params) -> Seq2Set:
    return cls(**{**cls.contract_params, **params})


def fitted_seq2set(monkeypatch=None, **params) -> tuple[Seq2Set, Split, Split]:
    from mlbench.data.synthetic import contract_tasks

    task = contract_tasks().main
    method = small_method(epochs=2, rl_epochs=1, **params)
    method.fit(task.train, task.valid, FitContext(seed=0, progress=False))
    return method, task.train, task.valid


def test_steps_after_eos_get_no_gradient(monkeypatch) -> None:
    from mlbench.methods.neural.batching import collate, encode_label_sequences
    from mlbench.methods.neural.text import encode_texts

    method, train, _ = fitted_seq2set(rl_samples=3, rl_dropout=True)
    net = method.network_
    net.train()
    recorded: dict[str, list] = {"logits": [], "sampled": []}
    real_decoder, real_decode = net.decoder, decoders.decode

    def recording_decoder(memory):
        step = real_decoder(memory)

        def wrapped(prev, state):
            logits, state = step(prev, state)
            if logits.requires_grad:  # the sampled pass (the greedy baseline runs without gradients)
                logits.retain_grad()
                recorded["logits"].append(logits)
            return logits, state

        return wrapped

    def recording_decode(*args, **kwargs):
        result = real_decode(*args, **kwargs)
        if kwargs.get("sample"):
            recorded["sampled"].append(result)
        return result

    monkeypatch.setattr(net, "decoder", recording_decoder)
    monkeypatch.setattr(decoders, "decode", recording_decode)
    texts = encode_texts(train.texts[:16], method.vocab_, method.max_len)
    batch = collate(texts, np.arange(16), label_seqs=encode_label_sequences(train.label_seqs[:16]))
    loss = method.policy_gradient_loss(net, batch)
    loss.backward()
    tokens = recorded["sampled"][0].tokens  # 48 x S
    assert tokens.shape[0] == 48
    grads = torch.stack([lg.grad for lg in recorded["logits"]], dim=1)  # 48 x S x V
    ended_before = (tokens == LABEL_EOS).long().cumsum(1) - (tokens == LABEL_EOS).long() > 0
    assert ended_before.any(), "the case needs sequences that end before the last step"
    assert (grads[ended_before] == 0).all()
    assert (grads[~ended_before].abs().sum(-1) > 0).any()


def test_a_short_rl_phase_raises_the_mean_reward() -> None:
    from mlbench.data.synthetic import contract_tasks

    task = contract_tasks().main
    # a weak MLE start (one epoch at a low rate), then a few policy-gradient epochs
    method = small_method(epochs=1, lr=2e-3, rl_epochs=6, rl_lr=1e-2, rl_patience=None, rl_samples=2)
    ctx = FitContext(seed=0, progress=False)
    method.fit(task.train, task.valid, ctx)
    rewards = [m["train_reward_greedy"] for _, m in ctx.history if "train_reward_greedy" in m]
    samples = [m["train_reward_sample"] for _, m in ctx.history if "train_reward_sample" in m]
    assert len(rewards) == 6
    assert rewards[-1] > rewards[0] + 0.1 and samples[-1] > samples[0] + 0.1
    assert all("train_advantage_nonzero" in m for _, m in ctx.history[1:])


def test_leave_one_out_baseline_is_the_mean_of_the_other_samples(monkeypatch) -> None:
    """The advantage of each sample is its reward minus the mean of its document's other samples,
    and no greedy decode runs."""
    import mlbench.methods.seq2set as seq2set_module
    from mlbench.methods.neural.batching import collate, encode_label_sequences
    from mlbench.methods.neural.text import encode_texts

    method, train, _ = fitted_seq2set(rl_samples=3, rl_baseline="loo", rl_dropout=True)
    net = method.network_
    calls: list[bool] = []
    real_decode = decoders.decode

    def recording_decode(*args, **kwargs):
        calls.append(bool(kwargs.get("sample")))
        return real_decode(*args, **kwargs)

    seen = {}
    real_reward = seq2set_module.reward_of

    def recording_reward(pred, gold, kind="f1", mix=0.5):
        out = real_reward(pred, gold, kind, mix)
        seen["rewards"] = out.detach().clone()
        return out

    monkeypatch.setattr(decoders, "decode", recording_decode)
    monkeypatch.setattr(seq2set_module, "reward_of", recording_reward)
    stats = seq2set_module.RewardStats()
    texts = encode_texts(train.texts[:16], method.vocab_, method.max_len)
    batch = collate(texts, np.arange(16), label_seqs=encode_label_sequences(train.label_seqs[:16]))
    method.policy_gradient_loss(net, batch, stats)
    assert calls == [True]  # sampling only
    r = seen["rewards"].view(16, 3)
    expected = (r - (r.sum(1, keepdim=True) - r) / 2).reshape(-1)
    assert stats.nonzero == float((expected != 0).sum())
    report = stats.flush()
    assert "train_reward_greedy" not in report and report["train_reward_sample"] == pytest.approx(float(r.mean()))


def test_a_short_loo_rl_phase_raises_the_mean_reward() -> None:
    from mlbench.data.synthetic import contract_tasks

    task = contract_tasks().main
    method = small_method(epochs=1, lr=2e-3, rl_epochs=6, rl_lr=1e-2, rl_patience=None, rl_samples=3, rl_baseline="loo")
    ctx = FitContext(seed=0, progress=False)
    method.fit(task.train, task.valid, ctx)
    samples = [m["train_reward_sample"] for _, m in ctx.history if "train_reward_sample" in m]
    assert len(samples) == 6 and samples[-1] > samples[0] + 0.1


# ------------------------------------------------------------------ methods


def test_seq2set_continues_from_a_saved_seq2seq(tmp_path) -> None:
    from mlbench.data.synthetic import contract_tasks

    task = contract_tasks().main
    mle = small_method(Seq2Seq, epochs=2)
    mle.fit(task.train, task.valid, FitContext(seed=0, progress=False))
    mle.save(tmp_path / "mle")
    ctx = FitContext(seed=0, progress=False)
    rl = small_method(init_from=str(tmp_path / "mle"), rl_epochs=2, rl_lr=1e-9, rl_patience=None)
    rl.fit(task.train, task.valid, ctx)
    start = ctx.history[0]
    assert start[0] == 0 and start[1]["valid_micro_f1"] == pytest.approx(mle.train_result_.best_valid_micro_f1)
    assert [e for e, _ in ctx.history] == [0, 1, 2]
    # a negligible learning rate changes nothing: the same predictions as the seq2seq it started from
    assert (rl.predict(task.test) != mle.predict(task.test)).nnz == 0
    with pytest.raises(MlbenchError, match="another architecture: decoder_hidden"):
        small_method(init_from=str(tmp_path / "mle"), decoder_hidden=64).fit(task.train, task.valid, FitContext(progress=False))


def test_model_selection_spans_both_phases() -> None:
    from mlbench.data.synthetic import contract_tasks

    task = contract_tasks().main
    ctx = FitContext(seed=0, progress=False)
    method = small_method(epochs=3, rl_epochs=2, rl_lr=1e-2, rl_patience=None)
    method.fit(task.train, task.valid, ctx)
    f1s = [m["valid_micro_f1"] for _, m in ctx.history]
    assert [e for e, _ in ctx.history] == [1, 2, 3, 4, 5]
    assert method.train_result_.best_valid_micro_f1 == pytest.approx(max(f1s))
    assert method.train_result_.best_epoch == 1 + int(np.argmax(f1s))


@pytest.mark.parametrize("bad, message", [
    ({"reward": "bleu"}, "reward must be one of"),
    ({"rl_samples": 0}, "rl_samples must be a positive integer"),
    ({"rl_temperature": 0}, "rl_temperature must be a positive"),
    ({"reward_mix": 1.5}, "reward_mix must be in"),
    ({"global_embedding": "yes"}, "global_embedding must be true or false"),
    ({"rl_baseline": "mean"}, "rl_baseline must be one of"),
    ({"rl_baseline": "loo", "rl_samples": 1}, "needs rl_samples >= 2"),
])
def test_bad_settings_are_one_line_errors(bad, message) -> None:
    with pytest.raises(MlbenchError, match=message):
        Seq2Set(**bad)


def test_presets_name_known_parameters() -> None:
    for cls in (Seq2Seq, Seq2Set):
        for preset in ("small", "paper"):
            cls(preset=preset)
    paper = Seq2Set(preset="paper").params
    assert (paper["embedding_dim"], paper["decoder_hidden"], paper["encoder_layers"], paper["batch_size"]) == (512, 512, 2, 64)
    assert (paper["lr"], paper["rl_lr"], paper["rl_clip_norm"], paper["epochs"]) == (1e-3, 1e-5, 8.0, 20)

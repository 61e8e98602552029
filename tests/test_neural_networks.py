"""The convolutional networks: dynamic max pooling, padding independence, CNN-RNN beams."""

from __future__ import annotations


import torch
import torch.nn.functional as F

from mlbench.methods.neural.batching import (
    LABEL_EOS,
    N_LABEL_SPECIALS,
)
from mlbench.methods.neural.decoders import (
    beam_search,
)
from mlbench.methods.neural.networks import CNNRNNNetwork, XMLCNNNetwork, dynamic_max_pool


def test_dynamic_max_pool_shape_and_agreement_with_adaptive_pooling() -> None:
    torch.manual_seed(0)
    maps = torch.rand(5, 3, 11)
    lengths = torch.tensor([11, 7, 3, 1, 2])
    pooled = dynamic_max_pool(maps, lengths, chunks=4)
    assert pooled.shape == (5, 3, 4)
    maps.requires_grad_(True)
    weights = torch.randn(5, 3, 4)
    (dynamic_max_pool(maps, lengths, chunks=4) * weights).sum().backward()
    for i, n in enumerate(lengths.tolist()):
        doc = maps.detach()[i : i + 1, :, :n].clone().requires_grad_(True)
        expected = torch.nn.AdaptiveMaxPool1d(4)(doc)
        assert torch.equal(pooled[i : i + 1], expected)
        (expected * weights[i : i + 1]).sum().backward()
        assert torch.allclose(maps.grad[i : i + 1, :, :n], doc.grad)  # same gradient too
        assert (maps.grad[i, :, n:] == 0).all()  # and none into the padding


def test_xml_cnn_prediction_does_not_depend_on_batch_padding() -> None:
    torch.manual_seed(0)
    net = XMLCNNNetwork(30, 5, 8, [2, 4], 6, 3, 16, dropout=0.0, embedding_dropout=0.0).eval()
    doc = torch.randint(2, 30, (1, 6))
    alone = net(F.pad(doc, (0, 0)), torch.tensor([6]))
    padded = torch.cat([F.pad(doc, (0, 14)), torch.randint(2, 30, (1, 20))])
    together = net(padded, torch.tensor([6, 20]))
    assert alone.shape == (1, 5)
    assert torch.allclose(alone, together[:1], atol=1e-6)
    paper = XMLCNNNetwork(30, 5, 8, [2, 4], 6, 3, 16, 0.0, 0.0, pooling="padded").eval()
    assert paper(padded, torch.tensor([6, 20])).shape == (2, 5)


def test_cnn_rnn_beam_outputs_never_repeat_labels() -> None:
    torch.manual_seed(1)
    net = CNNRNNNetwork(40, 5, 8, [2, 3], 4, 16, 1, 8, dropout=0.0, embedding_dropout=0.0, document_at_output=True).eval()
    # bias the output towards one label so that a missing mask would repeat it
    with torch.no_grad():
        net.output.bias[N_LABEL_SPECIALS + 2] += 10.0
        net.output.bias[LABEL_EOS] -= 10.0
    tokens = torch.randint(2, 40, (6, 9))
    res = beam_search(net.step, net.initial_state(tokens, torch.full((6,), 9)), 6, net.n_tokens, 4, max_steps=6)
    for row in res.beams.view(-1, res.beams.shape[-1]).tolist():
        labels = [x for x in row if x >= N_LABEL_SPECIALS]
        assert len(labels) == len(set(labels))
    assert (res.tokens[:, 0] == N_LABEL_SPECIALS + 2).all()

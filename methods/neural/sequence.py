"""``LabelSequenceMethod``: the base of the neural methods that decode the label set as a sequence (CNN-RNN,
Seq2Seq, Seq2Set). It fills the required hooks of :mod:`.hooks` for them: teacher-forced sequence NLL as the
loss, batched beam search as the prediction, the longest training label set saved with the model; a subclass
supplies the network and ``decoder_start``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from mlbench.api import Split
from mlbench.methods.neural.method import NeuralMethod

if TYPE_CHECKING:
    import torch

    from mlbench.methods.neural.batching import Batch


class LabelSequenceMethod(NeuralMethod):
    """A neural method that emits the label set as a sequence, one label per step, until EOS.

    Training is maximum likelihood with teacher forcing on the task's label
    sequences (``split.label_seqs``): the network's ``forward(tokens, lengths,
    label_inputs)`` gives every step's logits. Decoding is batched beam search
    from :meth:`decoder_start`, for at most the longest training label set plus
    EOS (longer sets were never seen).
    """

    target_kind: ClassVar[str] = "sequence"
    max_labels_: int

    @abstractmethod
    def decoder_start(self, network: "torch.nn.Module", batch: "Batch") -> tuple[Callable, Any]:
        """(step function, initial decoder state) of a batch, as :func:`~.decoders.beam_search` takes them."""

    def prepare(self, train: Split) -> None:
        longest = max((len(set(s)) for s in train.label_seqs), default=0)
        self.max_labels_ = max(1, min(longest, train.n_labels))

    def extra_state(self) -> dict[str, Any]:
        return {"max_labels": self.max_labels_}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        self.max_labels_ = int(state["max_labels"])

    def batch_loss(self, network, batch):
        from mlbench.methods.neural.decoders import masked_sequence_nll

        logits = network(batch.tokens, batch.lengths, batch.label_inputs, batch.values)
        return masked_sequence_nll(logits, batch.label_inputs, batch.label_outputs)

    def predict_batch(self, network, batch):
        from mlbench.methods.neural.batching import multi_hot
        from mlbench.methods.neural.decoders import beam_search

        step, state = self.decoder_start(network, batch)
        result = beam_search(
            step,
            state,
            batch_size=len(batch.index),
            vocab_size=network.n_tokens,
            beam_size=int(self.params["beam_size"]),
            max_steps=self.max_labels_ + 1,
            device=batch.tokens.device,
        )
        return multi_hot(result.tokens, len(self.labels_))

"""Shared parts of the neural methods (XML-CNN, CNN-RNN, Seq2Seq, Seq2Set).

- :mod:`.text`: tokenizer, capped vocabulary, ragged encoding with truncation;
- :mod:`.token_cache`: vocabularies and encoded splits cached on disk (memory-mapped), shared by trials and runs;
- :mod:`.batching`: length-bucketed batches, per-batch padding, label targets, DataLoader workers;
- :mod:`.train`: the one training loop (Adam, clipping, early stopping on
  validation micro-F1, checkpoints, AMP on CUDA, NaN detection);
- :mod:`.decoders`: masked greedy/sampled decoding and batched beam search over
  label sequences;
- :mod:`.networks`: the convolutional text encoder, XML-CNN and CNN-RNN;
- :mod:`.hooks`: the one list of the hooks a neural method may override, with their defaults;
- :mod:`.method`: :class:`~.method.NeuralMethod`, the fit/predict/save plumbing
  a neural method inherits;
- :mod:`.phases`: :class:`~.phases.PhaseRunner`, training phases with model selection across them;
- :mod:`.sequence`: :class:`~.sequence.LabelSequenceMethod`, the base of the label-sequence decoders.

Only :mod:`.text`, :mod:`.token_cache`, :mod:`.hooks`, :mod:`.method`, :mod:`.phases` and :mod:`.sequence`
can be imported without torch; the method
modules (``mlbench.methods.xml_cnn`` ...) import the rest inside ``fit`` and
``predict`` so that ``mlbench list`` stays cheap.
"""

"""train: datasets, baseline models, training loop and inference for the source-tracing study.

Reads protocol manifests only (``manifests`` is the one ncst package it imports); labels and
taxonomy come from manifest columns.

Public API:
- :class:`train.config.TrainConfig` - every hyperparameter (paper defaults), recipe ``train:`` section;
- :func:`train.trainer.train` ``(config) -> run_dir`` - writes best.pt, last.pt, metrics.jsonl/csv, config.json;
- :func:`train.predict.load_trained` ``(run_dir_or_checkpoint, device) -> (model, config, classes)``;
- :func:`train.predict.predict` ``(model, config, df, batch_size, device, num_workers) -> Predictions``;
- :func:`train.models.build_model` - ``mel_lcnn``, ``aasist``, ``w2v2_aasist``, ``taxonomy``; every
  ``forward`` returns ``(logits (B, C), embedding (B, D))`` (the taxonomy model's logits are its
  heads' side by side).
- The codec-taxonomy model (``model="taxonomy"``, :mod:`train.taxonomy`, :mod:`train.models.taxonomy`):
  nine variants (``S_BIN`` ``S_AUX`` ``S_DEC`` ``S_VQ`` ``D_AUX`` ``D_DEC`` ``D_VQ`` ``M1`` ``M2``) of
  one multi-task model tracing a fake to its codec's design (vector quantiser, auxiliary objective,
  decoder domain) and bona fide vs spoof; ``TrainConfig.from_preset("codec_taxonomy")`` is its
  authors' training. :func:`train.predict.predict_taxonomy` ``(model, config, df) ->
  TaxonomyPredictions`` (per-head probabilities, P(spoof), targets); the study's taxonomy tables
  are in :mod:`train.taxonomy_tables`.
Metrics and OOD detectors live in :mod:`train.metrics` and :mod:`train.ood`.
Nothing runs at import time; torch is imported by the submodules that need it.
"""

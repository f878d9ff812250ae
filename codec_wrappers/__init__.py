"""codec_wrappers: neural audio codecs behind one contract, a variant catalog and a registry.

Use::

    from codec_wrappers.registry import load_codec
    codec = load_codec("encodec_24k_6kbps", weights=None, device="cpu")  # or "random:0", or a path
    out = codec.resynthesize(audio, lengths)  # (B, 1, T) at codec.sample_rate -> (B, 1, T)
    codec.weights.weights_id                   # record it in every manifest row

Pieces:

- :mod:`codec_wrappers.base`: :class:`Variant`, :class:`Taxonomy`, :class:`ResolvedWeights`,
  :class:`Codec` (the contract), :class:`BatchedCodec` (padding, grouping, trimming) and
  :func:`trim_to_lengths`.
- :mod:`codec_wrappers.catalog`: ``catalog.yaml`` (every variant: rate, bitrate, codebooks,
  taxonomy, ST-Codecfake label/role/condition, checkpoint, options); ``load_catalog()``,
  ``get_variant(id)``, ``variants_by(st_role=, family=)``, ``st_variant(label)``.
- :mod:`codec_wrappers.weights`: ``resolve_weights(variant, weights)`` (explicit path >
  ``$NCST_WEIGHTS_DIR/<variant_id>/`` > Hugging Face / torch hub / descript caches, offline >
  an error naming what to download and where), ``load_checkpoint`` (safetensors or
  ``torch.load(weights_only=True)``), ``seeded_state_dict(model, seed)``.
- :mod:`codec_wrappers.registry`: ``load_codec``, ``register_family``, ``is_implemented``,
  ``family_status``. Built-in families are modules imported on first use: ``encodec``, ``dac``,
  ``snac``, ``speechtokenizer``, ``mimi`` (``<family>_wrapper``), ``toy``, and the native
  ``wavtokenizer``, ``hificodec``, ``soundstream``, ``funcodec``, ``facodec``, ``audiodec``.
  A family whose module is missing is reported "not implemented"; nothing else breaks.

Plugins (a codec family from another package), one design:

1. the package defines a module with ``load_codec(variant, weights, device="cpu") -> Codec``
   and, optionally, ``catalog_entries() -> list[dict]`` returning its variants (same fields as
   ``catalog.yaml``);
2. it declares the family in its ``pyproject.toml``::

       [project.entry-points."ncst.codecs"]
       myfamily = "my_package.my_codec:load_codec"

   (entry-point name = family name; value = the loader). Installing the package is enough:
   ``load_catalog()`` adds the entries of every ``ncst.codecs`` module that has
   ``catalog_entries``, and ``load_codec`` finds the loader by family name.

Variants of an existing family (new checkpoints, other bitrates) need no package: list them in
a YAML file with a top-level ``variants:`` list and name it (or its folder) in
``$NCST_CATALOG_PATH`` (``os.pathsep``-separated). Duplicate ids are an error naming both
sources. ``register_family(name, loader)`` registers a loader for one process (tests,
notebooks). See docs/adding_a_codec.md.

This package imports nothing of ncst outside itself: no manifests, no Ray, no audio files.
"""

"""Shared building blocks of the native codecs, named so that official checkpoints load strictly.

Modules (each documents the state-dict key names it produces):

- :mod:`.conv`: ``WNConv1d`` / ``WNConvTranspose1d``, convolutions with the *legacy* weight-norm
  parametrisation (``weight_g``, ``weight_v``, ``bias``; no ``weight``), as
  ``torch.nn.utils.weight_norm`` stores them in every checkpoint of these families.
- :mod:`.seanet`: EnCodec's SEANet encoder/decoder (``SConv1d``, ``SConvTranspose1d``, ``SLSTM``,
  ``SEANetResnetBlock``) with non-causal reflect padding (WavTokenizer, AcademiCodec SoundStream).
- :mod:`.quantization`: EnCodec-style residual VQ with EMA codebook buffers
  (``vq.layers.<i>._codebook.{inited,cluster_size,embed,embed_avg}``) and HiFi-Codec's group
  residual VQ (``quantizer_modules[2].<g>.embedding.weight``).
- :mod:`.hifigan`: HiFi-GAN V1 ``ResBlock1`` and generator (``conv_pre``, ``ups``, ``resblocks``,
  ``conv_post``).
- :mod:`.vocos`: Vocos backbone (ConvNeXt + AdaLayerNorm, WavTokenizer's attention ``pos_net``) and
  the ISTFT head whose window is a checkpoint buffer.

``funcodec_seanet`` and ``facodec_blocks`` belong to the FunCodec/FACodec/AudioDec modules.
"""

"""Speed measurements of the certification core behind ``mmcert-ros bench`` (figures and
ratios, no asserts): the reference hot path (:mod:`.reference`), the engine's stages and
modes (:mod:`.engine_speed`, :mod:`.core`, :mod:`.baselines`) and the machine every figure
names (:mod:`.machine`: CPU model, ISA class, load, the AVX2 cap). The scripts under
``bench/`` use them too."""
